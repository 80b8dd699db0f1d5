// A minimal CRI (k8s.io/cri-api runtime.v1) RuntimeService client over
// @grpc/grpc-js, for driving containerd's CRI plugin in the NRI test: just the
// pod and container lifecycle calls, their messages written field by field
// with protobuf-es's BinaryWriter (field numbers from cri-api's api.proto).
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { Client, credentials } from "@grpc/grpc-js";

/** NamespaceMode.NODE: the pod uses the host's network, so no CNI is needed. */
const NAMESPACE_NODE = 2;

export interface PodSpec {
  name: string;
  uid: string;
  namespace: string;
  annotations?: Record<string, string>;
}

function podSandboxConfig(w: BinaryWriter, pod: PodSpec, logDirectory: string): void {
  w.uint32((1 << 3) | 2).fork(); // metadata
  w.uint32((1 << 3) | 2).string(pod.name);
  w.uint32((2 << 3) | 2).string(pod.uid);
  w.uint32((3 << 3) | 2).string(pod.namespace);
  w.join();
  w.uint32((3 << 3) | 2).string(logDirectory); // log_directory
  for (const [k, v] of Object.entries(pod.annotations ?? {})) {
    w.uint32((7 << 3) | 2).fork(); // annotations map entry
    w.uint32((1 << 3) | 2).string(k);
    w.uint32((2 << 3) | 2).string(v);
    w.join();
  }
  w.uint32((8 << 3) | 2).fork(); // linux
  w.uint32((2 << 3) | 2).fork(); // security_context
  w.uint32((1 << 3) | 2).fork(); // namespace_options
  w.uint32((1 << 3) | 0).int32(NAMESPACE_NODE); // network
  w.join().join().join();
}

/** Reads field 1 (a string id) of a reply. */
function idOf(bytes: Uint8Array): string {
  const r = new BinaryReader(bytes);
  let id = "";
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 1 && type === 2) id = r.string();
    else r.skip(type);
  }
  return id;
}

export interface CriClient {
  runPodSandbox(pod: PodSpec): Promise<string>;
  createContainer(
    podId: string,
    pod: PodSpec,
    c: { name: string; image: string; command: string[]; annotations?: Record<string, string> },
  ): Promise<string>;
  startContainer(id: string): Promise<void>;
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  removeContainer(id: string): Promise<void>;
  stopPodSandbox(id: string): Promise<void>;
  removePodSandbox(id: string): Promise<void>;
  close(): void;
}

export function createCriClient(socketPath: string, logDirectory: string): CriClient {
  const client = new Client(`unix://${socketPath}`, credentials.createInsecure());
  const call = (method: string, build: (w: BinaryWriter) => void): Promise<Uint8Array> =>
    new Promise((resolve, reject) => {
      const w = new BinaryWriter();
      build(w);
      client.makeUnaryRequest(
        `/runtime.v1.RuntimeService/${method}`,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => new Uint8Array(b),
        w.finish(),
        (err, reply) => (err ? reject(new Error(`CRI ${method}: ${err.message}`)) : resolve(reply ?? new Uint8Array())),
      );
    });
  const byId = (method: string) => async (id: string) => {
    await call(method, (w) => w.uint32((1 << 3) | 2).string(id));
  };
  return {
    async runPodSandbox(pod) {
      return idOf(
        await call("RunPodSandbox", (w) => {
          w.uint32((1 << 3) | 2).fork();
          podSandboxConfig(w, pod, logDirectory);
          w.join();
        }),
      );
    },
    async createContainer(podId, pod, c) {
      return idOf(
        await call("CreateContainer", (w) => {
          w.uint32((1 << 3) | 2).string(podId);
          w.uint32((2 << 3) | 2).fork(); // config
          w.uint32((1 << 3) | 2).fork(); // metadata
          w.uint32((1 << 3) | 2).string(c.name);
          w.join();
          w.uint32((2 << 3) | 2).fork(); // image
          w.uint32((1 << 3) | 2).string(c.image);
          w.join();
          for (const arg of c.command) w.uint32((3 << 3) | 2).string(arg);
          for (const [k, v] of Object.entries(c.annotations ?? {})) {
            w.uint32((10 << 3) | 2).fork();
            w.uint32((1 << 3) | 2).string(k);
            w.uint32((2 << 3) | 2).string(v);
            w.join();
          }
          w.uint32((11 << 3) | 2).string(`${c.name}.log`); // log_path, under the pod's log_directory
          w.join();
          w.uint32((3 << 3) | 2).fork(); // sandbox_config
          podSandboxConfig(w, pod, logDirectory);
          w.join();
        }),
      );
    },
    startContainer: byId("StartContainer"),
    async stopContainer(id, timeoutSeconds) {
      await call("StopContainer", (w) => {
        w.uint32((1 << 3) | 2).string(id);
        w.uint32((2 << 3) | 0).int64(timeoutSeconds);
      });
    },
    removeContainer: byId("RemoveContainer"),
    stopPodSandbox: byId("StopPodSandbox"),
    removePodSandbox: byId("RemovePodSandbox"),
    close: () => client.close(),
  };
}
