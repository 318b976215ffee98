// `node --import <this>`: records every module the process resolves through the ESM loader (one
// URL a line, in the file named by LOADED_MODULES_FILE), so a test can tell what a command loaded.
// Plain JavaScript: it runs in processes started without tsx.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url, { data: { out: process.env.LOADED_MODULES_FILE } });
