export const benchAllocCommand = undefined as never;
