/** The artifact store in one import: the interface, key rules and the local implementation. */
export * from './artifact-store.ts';
export * from './local-store.ts';
