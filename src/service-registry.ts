import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code } from "./code.js";
import type { ServiceImpl } from "./service-impl.js";
import { TtrpcError } from "./ttrpc-error.js";

/** A method a server serves, with its bound implementation. */
export interface Registered {
  readonly method: DescMethod;
  readonly impl: (...args: never[]) => unknown;
}

/** `register` was called twice for one service name: ALREADY_EXISTS, naming the service. */
export class DuplicateServiceError extends TtrpcError {
  override name = "DuplicateServiceError";
  constructor(readonly service: string) {
    super(`ttrpc: service ${service} is already registered`, Code.AlreadyExists);
  }
}

/** The services of a server by wire name, and their methods by name. */
export class ServiceRegistry {
  readonly #services = new Map<string, Map<string, Registered>>();

  /** Registers `impl` under `name`; methods it leaves out answer UNIMPLEMENTED. */
  register<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, name: string): void {
    if (this.#services.has(name)) throw new DuplicateServiceError(name);
    const methods = new Map<string, Registered>();
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (fn === undefined) continue;
      if (typeof fn !== "function") throw new TypeError(`ttrpc: ${name}.${method.localName} is not a function`);
      methods.set(method.name, { method, impl: fn.bind(impl) as Registered["impl"] });
    }
    this.#services.set(name, methods);
  }

  /** The method, or the UNIMPLEMENTED error to answer with (Go's words). */
  lookup(service: string, method: string): Registered | TtrpcError {
    const methods = this.#services.get(service);
    if (methods === undefined) return new TtrpcError(`service ${service}`, Code.Unimplemented);
    return methods.get(method) ?? new TtrpcError(`method ${method}`, Code.Unimplemented);
  }
}
