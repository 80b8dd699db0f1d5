/**
 * What a shim serving both Task and Migration needs of the Migration side
 * (hcsshim's LCOW shim: `ensureMigrationIdle`, `PatchResourcePaths`), and
 * the two annotations hcsshim defines for migration.
 *
 * @module
 */

/**
 * Sandbox annotation that opts a pod into live migration: hcsshim then
 * restricts it to the features that survive a migration
 * (`annotations.LiveMigrationSupportEnabled`).
 */
export const LIVE_MIGRATION_SUPPORT_ENABLED = "io.microsoft.migration.support-enabled";

/**
 * Annotation of a destination's Task Create that re-creates an imported
 * container: its value is the container's id on the source
 * (`annotations.LiveMigrationSourceContainerID`).
 */
export const LIVE_MIGRATION_SOURCE_CONTAINER_ID = "io.microsoft.migration.source-container-id";

/** CRI's container-type annotation; "sandbox" marks a pod's sandbox container. */
export const KUBERNETES_CONTAINER_TYPE = "io.kubernetes.cri.container-type";

/** A destination Task Create that re-creates an imported container. */
export interface RecreateContainerRequest {
  /** The container's id on this host (`CreateTaskRequest.id`). */
  readonly id: string;
  /** The OCI spec's annotations; must name the source container. */
  readonly annotations: Readonly<Record<string, string>> | undefined;
}

/**
 * The Migration server's rules for the Task side of the same shim. Enable
 * them with the service option `trackContainers`: ImportSandbox then lists
 * the imported containers as pending, and PrepareSandbox fails with
 * FAILED_PRECONDITION naming them until Task Create re-created each through
 * {@link recreateContainer}.
 */
export interface MigrationTaskRules {
  /**
   * Throws FAILED_PRECONDITION while a migration session is not Idle: a
   * shim's Task State, Delete and Kill call it first, as hcsshim's do.
   */
  ensureIdle(): void;
  /** Whether a Task Create is a migration re-creation (it carries {@link LIVE_MIGRATION_SOURCE_CONTAINER_ID}). */
  isRecreation(annotations: Readonly<Record<string, string>> | undefined): boolean;
  /**
   * Marks an imported container re-created by Task Create, as hcsshim's
   * `PatchResourcePaths`: an empty id or a missing annotation is
   * INVALID_ARGUMENT, a session not DestinationImported FAILED_PRECONDITION, a
   * container not pending UNKNOWN, a container-type annotation that
   * contradicts whether the container is its pod's sandbox INVALID_ARGUMENT.
   * Returns the source container id.
   */
  recreateContainer(request: RecreateContainerRequest): string;
  /** The imported containers not yet re-created, sorted. */
  pendingContainers(): string[];
}
