/**
 * The small vocabulary the template writer reads stories with: character archetypes and how they look,
 * places that are settings (never characters), venues and the food they serve, and the little words a
 * title or a name must not end on. Plain data, so it can grow without touching the writer.
 */

export interface Archetype {
  /** The noun as it appears in a story ("old man" before "man"). */
  noun: string;
  /** Fixed appearance tags, reused verbatim in every panel. */
  appearance: readonly string[];
  /** Names that suit the archetype; without any, the character is called "The <Noun>". */
  nicknames?: readonly string[];
  /** How this archetype says hello when it first appears. */
  greeting?: string;
  /** How it shouts when surprised. */
  exclaim?: string;
  /** A sound it starts its lines with ("Beep."). */
  tic?: string;
}

export const ARCHETYPES: readonly Archetype[] = [
  {
    noun: 'robot',
    appearance: ['robot', 'metal body', 'round head', 'glowing blue eyes', 'apron'],
    nicknames: ['Robo', 'Bolt', 'Unit-7', 'Gizmo'],
    greeting: 'Welcome, traveller.',
    exclaim: 'Systems... overloading!',
    tic: 'Beep.',
  },
  {
    noun: 'astronaut',
    appearance: ['white spacesuit', 'helmet under arm', 'short brown hair', 'tired eyes'],
    greeting: 'Hello? Is anyone out here?',
    exclaim: 'Houston, we have a problem!',
  },
  {
    noun: 'detective',
    appearance: ['beige trench coat', 'fedora hat', 'sharp eyes', 'loosened tie'],
    greeting: 'Nobody move. I have questions.',
  },
  {
    noun: 'wizard',
    appearance: ['long grey beard', 'pointed blue hat', 'star-patterned robe', 'wooden staff'],
    greeting: 'Ah, you came at last.',
    exclaim: 'By the ancient stars!',
  },
  {
    noun: 'witch',
    appearance: ['pointed black hat', 'long dark hair', 'purple cloak', 'green eyes'],
    greeting: 'Mind the cauldron, dearie.',
  },
  {
    noun: 'knight',
    appearance: ['silver plate armour', 'red cape', 'short blond hair', 'longsword at hip'],
    greeting: 'Well met, friend.',
    exclaim: 'To arms!',
  },
  {
    noun: 'cat',
    appearance: ['small orange tabby cat', 'green eyes', 'white paws', 'fluffy tail'],
    nicknames: ['Mochi', 'Whiskers', 'Pumpkin'],
    greeting: 'Mrrow?',
    exclaim: 'Hsssss!',
    tic: 'Mrrp.',
  },
  {
    noun: 'dog',
    appearance: ['scruffy brown dog', 'floppy ears', 'red collar', 'wagging tail'],
    nicknames: ['Biscuit', 'Rex', 'Pepper'],
    greeting: 'Woof!',
    exclaim: 'Woof! Woof!',
    tic: 'Woof.',
  },
  {
    noun: 'dragon',
    appearance: ['green scaled dragon', 'golden eyes', 'leathery wings', 'curled horns'],
    nicknames: ['Ember', 'Scorch'],
    exclaim: 'Roooaaar!',
    tic: 'Hrrmm.',
  },
  {
    noun: 'pirate',
    appearance: ['tricorn hat', 'eyepatch', 'black beard', 'red sash', 'long coat'],
    greeting: 'Ahoy there!',
    tic: 'Arr.',
    exclaim: 'Shiver me timbers!',
  },
  { noun: 'ninja', appearance: ['black ninja outfit', 'face mask', 'sharp dark eyes', 'katana on back'] },
  {
    noun: 'chef',
    appearance: ['white chef hat', 'white double-breasted jacket', 'rolled sleeves', 'moustache'],
    greeting: 'Table for one?',
  },
  { noun: 'girl', appearance: ['young girl', 'brown pigtails', 'freckles', 'yellow raincoat'] },
  { noun: 'boy', appearance: ['young boy', 'messy black hair', 'striped t-shirt', 'scraped knees'] },
  { noun: 'old woman', appearance: ['old woman', 'grey bun', 'round glasses', 'knitted shawl'] },
  { noun: 'old man', appearance: ['old man', 'white beard', 'flat cap', 'walking cane', 'cardigan'] },
  { noun: 'woman', appearance: ['woman', 'shoulder-length auburn hair', 'hazel eyes', 'green jacket'] },
  { noun: 'man', appearance: ['man', 'short dark hair', 'stubble', 'denim jacket'] },
  {
    noun: 'scientist',
    appearance: ['white lab coat', 'safety goggles on forehead', 'messy hair', 'clipboard'],
    exclaim: 'Fascinating!',
  },
  {
    noun: 'alien',
    appearance: ['small green alien', 'big black eyes', 'antennae', 'silver jumpsuit'],
    nicknames: ['Zorp', 'Blip', 'Quix'],
    greeting: 'Greetings, Earthling.',
  },
  {
    noun: 'ghost',
    appearance: ['translucent white ghost', 'floating', 'hollow glowing eyes', 'wispy tail'],
    greeting: 'Boooo... oh, hello.',
  },
  { noun: 'princess', appearance: ['princess', 'golden tiara', 'long pink gown', 'long golden hair'] },
  { noun: 'prince', appearance: ['prince', 'small crown', 'blue royal coat', 'neat black hair'] },
  { noun: 'queen', appearance: ['queen', 'jewelled crown', 'purple velvet gown', 'silver hair'] },
  {
    noun: 'king',
    appearance: ['king', 'heavy gold crown', 'red ermine robe', 'grey beard'],
    greeting: 'Kneel, stranger. Or at least wave.',
  },
  { noun: 'soldier', appearance: ['soldier', 'olive uniform', 'helmet', 'buzz cut'], exclaim: 'Take cover!' },
  { noun: 'student', appearance: ['student', 'school uniform', 'backpack', 'short black hair'] },
  { noun: 'teacher', appearance: ['teacher', 'round glasses', 'cardigan', 'hair in a bun'] },
  {
    noun: 'vampire',
    appearance: ['pale vampire', 'slicked-back black hair', 'red eyes', 'high-collared cape'],
  },
  { noun: 'mermaid', appearance: ['mermaid', 'teal fish tail', 'long red hair', 'seashell necklace'] },
  {
    noun: 'cowboy',
    appearance: ['cowboy hat', 'leather vest', 'red bandana', 'boots with spurs'],
    greeting: 'Howdy.',
    exclaim: 'Yeehaw!',
  },
  { noun: 'samurai', appearance: ['samurai armour', 'topknot', 'two katanas', 'stern face'] },
  {
    noun: 'superhero',
    appearance: ['superhero', 'blue bodysuit', 'red cape', 'domino mask', 'muscular build'],
    exclaim: 'Not on my watch!',
  },
];

/**
 * Other words for people: a story's character when nothing better is known. They get neutral,
 * seeded appearance tags. ("customer", "friend" and the like are left out: "its first customer is an
 * astronaut" is about the astronaut.)
 */
export const PEOPLE = [
  'baker',
  'farmer',
  'sailor',
  'fisherman',
  'nurse',
  'doctor',
  'mechanic',
  'librarian',
  'musician',
  'painter',
  'artist',
  'writer',
  'poet',
  'grandmother',
  'grandma',
  'grandfather',
  'grandpa',
  'kid',
  'child',
  'stranger',
  'traveller',
  'traveler',
  'hero',
  'villain',
  'thief',
  'hunter',
  'monk',
  'priest',
  'inventor',
  'explorer',
  'captain',
  'pilot',
  'barista',
  'waiter',
  'waitress',
  'courier',
  'rival',
  'giant',
  'troll',
  'elf',
  'dwarf',
  'fairy',
  'zombie',
  'monster',
  'spy',
  'keeper',
] as const;

/** Places that are settings, never characters, even when capitalised mid-sentence. */
export const KNOWN_PLACES = new Set(
  (
    'mars venus mercury jupiter saturn neptune uranus pluto earth moon sun europa titan ' +
    'paris tokyo london berlin rome madrid lisbon amsterdam vienna prague moscow cairo dubai mumbai delhi ' +
    'beijing shanghai seoul kyoto osaka bangkok sydney melbourne toronto montreal vancouver chicago boston ' +
    'york jersey orleans vegas angeles francisco mexico brazil peru chile argentina canada japan china india ' +
    'france italy spain germany england scotland ireland wales egypt greece africa europe asia america ' +
    'antarctica arctic atlantis hollywood venice florence naples atlantic pacific sahara amazon everest ' +
    'narnia mordor gotham'
  ).split(' '),
);

/** Prepositions after which a capitalised word names a place ("on Mars", "to Paris"). */
export const PLACE_PREPOSITIONS = new Set(
  'on in at to from near into onto across over under above beyond toward towards through around inside outside'.split(
    ' ',
  ),
);

/** Venues: a place where a story happens that people visit. */
export const VENUES = new Set(
  (
    'bar shop café cafe restaurant bakery diner stall store inn tavern kitchen teahouse bookshop bookstore ' +
    'library hotel motel garage workshop studio salon pub truck stand cart parlour parlor market'
  ).split(' '),
);

/** Food words, and how a serving of each is said in a balloon. */
export const FOODS: Record<string, string> = {
  noodle: 'a bowl of noodles',
  noodles: 'a bowl of noodles',
  ramen: 'a bowl of ramen',
  soup: 'a bowl of soup',
  tea: 'a cup of tea',
  coffee: 'a cup of coffee',
  cake: 'a slice of cake',
  pie: 'a slice of pie',
  pizza: 'a slice of pizza',
  bread: 'a loaf of fresh bread',
  sushi: 'a plate of sushi',
  taco: 'a plate of tacos',
  burger: 'a hot burger',
  dumpling: 'a basket of dumplings',
  curry: 'a bowl of curry',
  ice: 'a scoop of ice cream',
  donut: 'a warm donut',
  pancake: 'a stack of pancakes',
};

/** Adjectives that change how someone looks, and the tag they add. */
export const LOOK_ADJECTIVES: Record<string, string> = {
  retired: 'weathered and worn',
  old: 'weathered and worn',
  elderly: 'weathered and worn',
  ancient: 'ancient and cracked',
  rusty: 'rusty patches',
  young: 'youthful face',
  little: 'small stature',
  tiny: 'tiny',
  giant: 'towering size',
  huge: 'towering size',
  lost: 'dusty and dishevelled',
  tired: 'dark circles under eyes',
  lonely: 'sad eyes',
  grumpy: 'permanent frown',
  cheerful: 'bright smile',
  brave: 'confident stance',
  shy: 'hunched shoulders',
};

/** Words a title must not end on, and that are never names or nouns. */
export const FUNCTION_WORDS = new Set(
  (
    'a an the and but or so then when while after before as at by for from in into of on onto over to under ' +
    'with without about is are was were be been its his her their our my your this that these those there here ' +
    'one two three once suddenly finally meanwhile later soon now today tonight tomorrow yesterday every all ' +
    'some no yes what who why how where which if because until although though he she it they we you i me him ' +
    'them us not very just also only first last new each other another during behind between against'
  ).split(' '),
);

/** Days, months and titles: capitalised but never a person's name on their own. */
export const NOT_NAMES = new Set(
  (
    'monday tuesday wednesday thursday friday saturday sunday january february march april may june july ' +
    'august september october november december god mr mrs ms dr sir lady lord captain'
  ).split(' '),
);

/** Settings for a story that names no place: neutral, picked by the story's hash. */
export const FALLBACK_SETTINGS = [
  'a quiet town street',
  'a small apartment at the edge of the city',
  'a windy hilltop overlooking a valley',
  'a busy market square',
  'an old train station',
  'a park with a single bench under a big tree',
] as const;

/** Neutral looks for people the lexicon does not know. */
export const HAIR = [
  'short black hair',
  'long red hair',
  'messy brown hair',
  'silver ponytail',
  'blonde bob cut',
  'curly dark hair',
];
export const EYES = ['green eyes', 'brown eyes', 'grey eyes', 'amber eyes', 'blue eyes', 'hazel eyes'];
export const BUILD = [
  'slim build',
  'athletic build',
  'tall and lanky',
  'broad shoulders',
  'short and stocky',
  'wiry build',
];
export const OUTFIT = [
  'leather jacket',
  'long trench coat',
  'knitted sweater',
  'canvas overalls',
  'hooded cloak',
  'work apron',
];
export const PALETTE = [
  'red and black palette',
  'teal and orange palette',
  'purple and gold palette',
  'green and white palette',
  'navy and silver palette',
  'yellow and grey palette',
];
