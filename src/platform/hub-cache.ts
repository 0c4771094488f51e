// The Hugging Face hub cache: @huggingface/hub's Node functions (Python's layout under
// HF_HUB_CACHE, blobs + snapshot symlinks). The browser build resolves this file to
// ./hub-cache.browser.ts (the same layout in the Origin Private File System, without symlinks).
export { downloadFileToCacheDir, getHFHubCachePath, getRepoFolderName } from "@huggingface/hub";
