/**
 * ComfyUI's HTTP and WebSocket messages as zod schemas (shared/reference/comfyui.md §1–2, checked
 * against ComfyUI_frontend's apiSchema.ts). Schemas are loose on purpose: ComfyUI adds fields between
 * versions, and a new field must never break a render. What we rely on is required; the rest passes.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// API-format graph
// ---------------------------------------------------------------------------------------------

/** An input is a literal or a link `[sourceNodeId, outputIndex]`. */
export const graphNodeSchema = z.looseObject({
  class_type: z.string().min(1),
  inputs: z.record(z.string(), z.unknown()),
  _meta: z.looseObject({ title: z.string().optional() }).optional(),
});
export const apiGraphSchema = z.record(z.string(), graphNodeSchema);
export type ApiGraph = z.infer<typeof apiGraphSchema>;
export type ApiGraphNode = z.infer<typeof graphNodeSchema>;

/** A canonical lowercase UUID, as newer ComfyUI requires for a client-supplied prompt_id. */
export const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------
// POST /prompt
// ---------------------------------------------------------------------------------------------

export const promptRequestSchema = z.looseObject({
  prompt: apiGraphSchema,
  client_id: z.string().optional(),
  prompt_id: z.string().optional(),
  extra_data: z.record(z.string(), z.unknown()).optional(),
  front: z.boolean().optional(),
  number: z.number().optional(),
});
export type PromptRequest = z.infer<typeof promptRequestSchema>;

export const nodeErrorDetailSchema = z.looseObject({
  type: z.string(),
  message: z.string(),
  details: z.string().optional().default(''),
  extra_info: z
    .looseObject({
      input_name: z.string().optional(),
      input_config: z.unknown().optional(),
      received_value: z.unknown().optional(),
    })
    .optional(),
});
export type NodeErrorDetail = z.infer<typeof nodeErrorDetailSchema>;

export const nodeErrorsSchema = z.record(
  z.string(),
  z.looseObject({
    errors: z.array(nodeErrorDetailSchema),
    dependent_outputs: z.array(z.string()).optional().default([]),
    class_type: z.string(),
  }),
);
export type NodeErrors = z.infer<typeof nodeErrorsSchema>;

export const promptErrorSchema = z.looseObject({
  type: z.string(),
  message: z.string(),
  details: z.string().optional().default(''),
  extra_info: z.unknown().optional(),
});

export const promptAcceptedSchema = z.looseObject({
  prompt_id: z.string(),
  number: z.number(),
  node_errors: nodeErrorsSchema.optional().default({}),
});
export type PromptAccepted = z.infer<typeof promptAcceptedSchema>;

export const promptRejectedSchema = z.looseObject({
  error: z.union([promptErrorSchema, z.string()]),
  node_errors: nodeErrorsSchema.optional().default({}),
});
export type PromptRejected = z.infer<typeof promptRejectedSchema>;

// ---------------------------------------------------------------------------------------------
// Outputs, history, queue
// ---------------------------------------------------------------------------------------------

export const imageRefSchema = z.looseObject({
  filename: z.string(),
  subfolder: z.string().optional().default(''),
  type: z.string().optional().default('output'),
});
export type ImageRef = z.infer<typeof imageRefSchema>;

export const nodeOutputSchema = z.looseObject({ images: z.array(imageRefSchema).optional() });
export type NodeOutput = z.infer<typeof nodeOutputSchema>;

/** `[event, data]` pairs kept in a history entry's status. */
export const statusMessageSchema = z.tuple([z.string(), z.record(z.string(), z.unknown())]);

export const historyEntrySchema = z.looseObject({
  prompt: z.array(z.unknown()).optional(),
  outputs: z.record(z.string(), nodeOutputSchema).optional().default({}),
  status: z
    .looseObject({
      status_str: z.string(),
      completed: z.boolean(),
      messages: z.array(statusMessageSchema).optional().default([]),
    })
    .optional(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;
export const historySchema = z.record(z.string(), historyEntrySchema);

/** Queue item: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`. */
export const queueItemSchema = z.array(z.unknown()).check((ctx) => {
  if (ctx.value.length < 2 || typeof ctx.value[1] !== 'string') {
    ctx.issues.push({ code: 'custom', message: 'queue item without a prompt id', input: ctx.value });
  }
});
export const queueSchema = z.looseObject({
  queue_running: z.array(queueItemSchema),
  queue_pending: z.array(queueItemSchema),
});
export type QueueState = { running: QueuedPrompt[]; pending: QueuedPrompt[] };
export interface QueuedPrompt {
  number: number;
  promptId: string;
}

export const promptInfoSchema = z.looseObject({
  exec_info: z.looseObject({ queue_remaining: z.number() }),
});

export const uploadResponseSchema = z.looseObject({
  name: z.string(),
  subfolder: z.string().optional().default(''),
  type: z.string().optional().default('input'),
});
export type UploadResponse = z.infer<typeof uploadResponseSchema>;

export const systemStatsSchema = z.looseObject({
  system: z.looseObject({ comfyui_version: z.string().optional(), os: z.string().optional() }).optional(),
  devices: z.array(
    z.looseObject({
      name: z.string(),
      type: z.string(),
      index: z.number().nullish(),
      vram_total: z.number(),
      vram_free: z.number(),
    }),
  ),
});

export const modelListSchema = z.array(z.string());

// ---------------------------------------------------------------------------------------------
// WebSocket JSON frames
// ---------------------------------------------------------------------------------------------

export const wsFrameSchema = z.looseObject({ type: z.string(), data: z.unknown() });

const withPrompt = { prompt_id: z.string() };
const nodeId = z.union([z.string(), z.number()]).transform((v) => String(v));

export const wsEventSchemas = {
  status: z.looseObject({
    status: z.looseObject({ exec_info: z.looseObject({ queue_remaining: z.number() }) }).optional(),
    sid: z.string().optional(),
  }),
  execution_start: z.looseObject({ ...withPrompt, timestamp: z.number().optional() }),
  execution_cached: z.looseObject({
    ...withPrompt,
    nodes: z.array(nodeId),
    timestamp: z.number().optional(),
  }),
  executing: z.looseObject({
    node: nodeId.nullable(),
    display_node: nodeId.nullish(),
    prompt_id: z.string().optional(),
  }),
  progress: z.looseObject({ ...withPrompt, value: z.number(), max: z.number(), node: nodeId.nullish() }),
  executed: z.looseObject({ ...withPrompt, node: nodeId, output: nodeOutputSchema.nullish() }),
  execution_success: z.looseObject({ ...withPrompt, timestamp: z.number().optional() }),
  execution_error: z.looseObject({
    ...withPrompt,
    node_id: nodeId.nullish(),
    node_type: z.string().nullish(),
    exception_type: z.string().optional().default(''),
    exception_message: z.string().optional().default(''),
    traceback: z.array(z.string()).optional(),
    timestamp: z.number().optional(),
  }),
  execution_interrupted: z.looseObject({
    ...withPrompt,
    node_id: nodeId.nullish(),
    node_type: z.string().nullish(),
    timestamp: z.number().optional(),
  }),
  feature_flags: z.record(z.string(), z.unknown()),
} as const;

export type WsEventType = keyof typeof wsEventSchemas;
export type WsEvent = {
  [K in WsEventType]: { type: K; data: z.infer<(typeof wsEventSchemas)[K]> };
}[WsEventType];
export type ExecutionErrorData = z.infer<typeof wsEventSchemas.execution_error>;
export type ExecutionInterruptedData = z.infer<typeof wsEventSchemas.execution_interrupted>;

/**
 * Parse one JSON text frame. Unknown types (progress_state, crystools.monitor, custom nodes' own
 * events) and malformed data return undefined: they are ignored, never fatal.
 */
export function parseWsEvent(text: string): WsEvent | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const frame = wsFrameSchema.safeParse(json);
  if (!frame.success) return undefined;
  const type = frame.data.type;
  if (!Object.hasOwn(wsEventSchemas, type)) return undefined;
  const schema = wsEventSchemas[type as WsEventType];
  const data = schema.safeParse(frame.data.data);
  if (!data.success) return undefined;
  return { type, data: data.data } as WsEvent;
}
