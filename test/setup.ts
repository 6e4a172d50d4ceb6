// Runs in every test file: temp directories made through the helpers go when the file is done.
import { afterAll } from 'vitest';
import { removeTempDirs } from './helpers/temp.ts';

afterAll(removeTempDirs);
