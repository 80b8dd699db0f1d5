/**
 * The task event topics containerd's runtime v2 defines (core/runtime/events.go),
 * each published with its message from containerd.events (`taskEvents`).
 *
 * @module
 */
/** Published with TaskCreate. */
export const TASK_CREATE = "/tasks/create";
/** Published with TaskStart. */
export const TASK_START = "/tasks/start";
/** Published with TaskExit. */
export const TASK_EXIT = "/tasks/exit";
/** Published with TaskDelete. */
export const TASK_DELETE = "/tasks/delete";
/** Published with TaskOOM. */
export const TASK_OOM = "/tasks/oom";
/** Published with TaskExecAdded. */
export const TASK_EXEC_ADDED = "/tasks/exec-added";
/** Published with TaskExecStarted. */
export const TASK_EXEC_STARTED = "/tasks/exec-started";
/** Published with TaskPaused. */
export const TASK_PAUSED = "/tasks/paused";
/** Published with TaskResumed. */
export const TASK_RESUMED = "/tasks/resumed";
/** Published with TaskCheckpointed. */
export const TASK_CHECKPOINTED = "/tasks/checkpointed";
