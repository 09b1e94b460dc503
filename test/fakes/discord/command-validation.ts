/**
 * Validation of application command bodies as Discord does it on bulk overwrite
 * (interactions/application-commands.mdx: "Application Command Naming", option limits).
 * Returns Discord's "Invalid Form Body" error tree (code 50035), or null when the body is valid.
 */

const NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;
const SUB_COMMAND = 1;
const SUB_COMMAND_GROUP = 2;
const STRING = 3;

type Errors = Record<string, unknown>;

function fieldError(code: string, message: string): Errors {
  return { _errors: [{ code, message }] };
}

function checkName(name: unknown, chatInput: boolean): Errors | null {
  if (typeof name !== 'string' || !NAME.test(name)) {
    return fieldError('APPLICATION_COMMAND_INVALID_NAME', 'Command name is invalid');
  }
  if (chatInput && name !== name.toLowerCase()) {
    return fieldError('APPLICATION_COMMAND_INVALID_NAME', 'Command name is invalid');
  }
  return null;
}

function checkDescription(description: unknown): Errors | null {
  if (typeof description !== 'string' || description.length < 1 || description.length > 100) {
    return fieldError('BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
  }
  return null;
}

function checkOptions(options: unknown, depth: number): Errors | null {
  if (options === undefined) return null;
  if (!Array.isArray(options)) return fieldError('BASE_TYPE_BAD_LIST', 'Must be an array.');
  if (options.length > 25) return fieldError('BASE_TYPE_BAD_LENGTH', 'Must be 25 or fewer in length.');
  const errors: Errors = {};
  const seen = new Set<string>();
  let sawOptional = false;
  options.forEach((raw: unknown, index) => {
    const option = (raw ?? {}) as Record<string, unknown>;
    const own: Errors = {};
    const nameError = checkName(option.name, true);
    if (nameError) own.name = nameError;
    const descriptionError = checkDescription(option.description);
    if (descriptionError) own.description = descriptionError;
    const type = option.type;
    if (typeof type !== 'number' || type < 1 || type > 11) {
      own.type = fieldError('BASE_TYPE_CHOICES', 'Value must be one of (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11).');
    }
    if (typeof option.name === 'string') {
      if (seen.has(option.name))
        own.name = fieldError(
          'APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS',
          'Option name already exists',
        );
      seen.add(option.name);
    }
    const isSub = type === SUB_COMMAND || type === SUB_COMMAND_GROUP;
    if (isSub) {
      if (depth >= (type === SUB_COMMAND_GROUP ? 1 : 2)) {
        own.type = fieldError(
          'APPLICATION_COMMAND_OPTIONS_TYPE_INVALID',
          'Sub-command and sub-command group option types are mutually exclusive to all other types',
        );
      }
      const nested = checkOptions(option.options, depth + 1);
      if (nested) own.options = nested;
    } else {
      if (option.required === true && sawOptional) {
        own.required = fieldError(
          'APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID',
          'Required options must be placed before non-required options',
        );
      }
      if (option.required !== true) sawOptional = true;
      if (option.choices !== undefined) {
        if (!Array.isArray(option.choices) || option.choices.length > 25) {
          own.choices = fieldError('BASE_TYPE_BAD_LENGTH', 'Must be 25 or fewer in length.');
        } else if (option.autocomplete === true) {
          own.autocomplete = fieldError(
            'AUTOCOMPLETE_CHOICES_MUTUALLY_EXCLUSIVE',
            'Autocomplete and choices are mutually exclusive',
          );
        } else {
          for (const choice of option.choices as Record<string, unknown>[]) {
            const name = choice?.name;
            if (typeof name !== 'string' || name.length < 1 || name.length > 100) {
              own.choices = fieldError('BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
            }
            if (type === STRING && (typeof choice?.value !== 'string' || choice.value.length > 100)) {
              own.choices = fieldError('BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
            }
          }
        }
      }
      for (const key of ['min_length', 'max_length'] as const) {
        const v = option[key];
        if (
          v !== undefined &&
          (typeof v !== 'number' || v < 0 || v > 6000 || (key === 'max_length' && v < 1))
        ) {
          own[key] = fieldError('NUMBER_TYPE_MAX', 'int value should be between 0 and 6000.');
        }
      }
    }
    if (Object.keys(own).length) errors[String(index)] = own;
  });
  return Object.keys(errors).length ? errors : null;
}

/** Validates one bulk-overwrite body (an array of commands); null when Discord would accept it. */
export function validateCommandBodies(body: unknown, scope: 'global' | 'guild'): Errors | null {
  if (!Array.isArray(body)) return fieldError('BASE_TYPE_BAD_LIST', 'Must be an array.');
  const limit = scope === 'global' ? 100 : 100;
  if (body.length > limit) return fieldError('BASE_TYPE_BAD_LENGTH', `Must be ${limit} or fewer in length.`);
  const errors: Errors = {};
  const seen = new Set<string>();
  body.forEach((raw: unknown, index) => {
    const command = (raw ?? {}) as Record<string, unknown>;
    const type = command.type ?? 1;
    const chatInput = type === 1;
    const own: Errors = {};
    const nameError = checkName(command.name, chatInput);
    if (nameError) own.name = nameError;
    if (chatInput) {
      const descriptionError = checkDescription(command.description);
      if (descriptionError) own.description = descriptionError;
      const optionErrors = checkOptions(command.options, 0);
      if (optionErrors) own.options = optionErrors;
    }
    const key = `${String(type)}:${String(command.name)}`;
    if (seen.has(key))
      own.name = fieldError(
        'APPLICATION_COMMANDS_DUPLICATE_NAME',
        `Application command names must be unique`,
      );
    seen.add(key);
    if (Object.keys(own).length) errors[String(index)] = own;
  });
  return Object.keys(errors).length ? errors : null;
}
