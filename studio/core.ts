// What the studio's worker uses of peftjs: the browser entry (src/browser.ts, its contract at the
// top), plus the few helpers of the CLI's train / predict commands the worker shares with them.
export * from "../src/browser.js";
export { methodConfig } from "../src/cli/methods.js";
export { collate, TASK_FIELDS, type DataTask } from "../src/train/data.js";
export { bestWindows, decodePredictions, PREDICTION_TASKS } from "../src/train/predict.js";
export { writeStoredZip } from "../src/io/stored-zip.js";
