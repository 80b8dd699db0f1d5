// The task event topics containerd's runtime v2 defines (core/runtime/events.go),
// each published with its message from containerd.events.
export const TASK_CREATE = "/tasks/create";
export const TASK_START = "/tasks/start";
export const TASK_EXIT = "/tasks/exit";
export const TASK_DELETE = "/tasks/delete";
export const TASK_OOM = "/tasks/oom";
export const TASK_EXEC_ADDED = "/tasks/exec-added";
export const TASK_EXEC_STARTED = "/tasks/exec-started";
export const TASK_PAUSED = "/tasks/paused";
export const TASK_RESUMED = "/tasks/resumed";
export const TASK_CHECKPOINTED = "/tasks/checkpointed";
