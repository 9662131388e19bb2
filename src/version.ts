/** ferry's version, as the CLI and the API report it. */
export const VERSION = '0.1.0'
