import type { DescService } from "@bufbuild/protobuf";
import { safeIdentifier } from "@bufbuild/protoplugin";

/** The TypeScript names generated for one service. */
export interface ServiceNames {
  /** `prefix + Service + suffix`, the stem of every name below. */
  readonly base: string;
  /** The const holding the ttrpc service name, e.g. `TaskServiceName`. */
  readonly serviceName: string;
  /** The client interface, e.g. `TaskClient`. */
  readonly client: string;
  /** The client factory, e.g. `createTaskClient`. */
  readonly createClient: string;
  /** The server implementation interface, e.g. `TaskServer`. */
  readonly server: string;
  /** The registration helper, e.g. `registerTaskServer`. */
  readonly registerServer: string;
}

/**
 * The ttrpc service name: the proto full name (`containerd.task.v3.Task`),
 * or the bare name when the file has no package (hcsshim's `Migration`).
 * Go's protoc-gen-go-ttrpc sends `service.Desc.FullName()`, which is the same.
 */
export function ttrpcServiceName(service: DescService): string {
  return service.typeName;
}

/**
 * Names for a service's generated declarations. The prefix and suffix wrap
 * the service name, as Go's `prefix=` does; the wire name never changes.
 */
export function serviceNames(service: DescService, prefix: string, suffix: string): ServiceNames {
  const base = prefix + service.name + suffix;
  const upper = base.charAt(0).toUpperCase() + base.slice(1);
  return {
    base: safeIdentifier(base),
    serviceName: `${base}ServiceName`,
    client: `${base}Client`,
    createClient: `create${upper}Client`,
    server: `${base}Server`,
    registerServer: `register${upper}Server`,
  };
}

/** Throws if two services of one file would export the same name. */
export function checkUniqueNames(all: readonly { service: DescService; names: ServiceNames }[]): void {
  const seen = new Map<string, DescService>();
  for (const { service, names } of all) {
    for (const name of [names.serviceName, names.client, names.createClient, names.server, names.registerServer]) {
      const other = seen.get(name);
      if (other !== undefined) {
        throw new Error(
          `services ${other.typeName} and ${service.typeName} in ${service.file.proto.name} both generate ` +
            `"${name}"; rename one or set prefix= / suffix=`,
        );
      }
      seen.set(name, service);
    }
  }
}
