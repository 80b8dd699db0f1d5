// Command save-peer checks ttrpc-es's hcsshim save envelope against Go's
// protobuf runtime, with Go code protoc-gen-go generated from the project's
// save payload protos (hcsshim.controller.{migration,pod,linuxcontainer}.save.v1):
//
//	save-peer wrap    reads a VM payload {"type_url","value_base64"} on stdin and
//	                  prints the envelope hcsshim's ExportState makes around it
//	                  (schema_version 1, one pod "pod-1" holding containers c1
//	                  and c2), packed with proto.Marshal
//	save-peer unwrap  reads an envelope {"type_url","value_base64"} on stdin, checks
//	                  its type URL and schema version as hcsshim's ImportState,
//	                  and prints what it holds as JSON
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"

	lcsave "ttrpces/interop/savepb/linuxcontainer"
	save "ttrpces/interop/savepb/migration"
	podsave "ttrpces/interop/savepb/pod"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// hcsshim's save.TypeURL and save.SchemaVersion, and the inner payloads' URLs.
const (
	typeURL          = "type.microsoft.com/hcsshim.controller.migration.save.v1.Payload"
	podTypeURL       = "type.microsoft.com/hcsshim.controller.pod.save.v1.Payload"
	containerTypeURL = "type.microsoft.com/hcsshim.controller.linuxcontainer.save.v1.Payload"
	schemaVersion    = 1
)

type wireAny struct {
	TypeURL     string `json:"type_url"`
	ValueBase64 string `json:"value_base64"`
}

type pod struct {
	PodID      string   `json:"pod_id"`
	Containers []string `json:"containers"`
}

type unwrapped struct {
	SchemaVersion uint32  `json:"schema_version"`
	VM            wireAny `json:"vm"`
	Pods          []pod   `json:"pods"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "save-peer: "+format+"\n", args...)
	os.Exit(1)
}

func readAny() *anypb.Any {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	var w wireAny
	if err := json.Unmarshal(in, &w); err != nil {
		fail("parse stdin: %v", err)
	}
	value, err := base64.StdEncoding.DecodeString(w.ValueBase64)
	if err != nil {
		fail("value_base64: %v", err)
	}
	return &anypb.Any{TypeUrl: w.TypeURL, Value: value}
}

func pack(url string, m proto.Message) *anypb.Any {
	b, err := proto.Marshal(m)
	if err != nil {
		fail("marshal %s: %v", url, err)
	}
	return &anypb.Any{TypeUrl: url, Value: b}
}

func printJSON(v any) {
	out, err := json.Marshal(v)
	if err != nil {
		fail("print: %v", err)
	}
	fmt.Println(string(out))
}

func wrap() {
	vm := readAny()
	containers := []*anypb.Any{}
	for _, id := range []string{"c1", "c2"} {
		containers = append(containers, pack(containerTypeURL, &lcsave.Payload{SchemaVersion: schemaVersion, ContainerId: id}))
	}
	p := pack(podTypeURL, &podsave.Payload{SchemaVersion: schemaVersion, PodId: "pod-1", GcsPodId: "pod-1", Containers: containers})
	env := pack(typeURL, &save.Payload{SchemaVersion: schemaVersion, Vm: vm, Pods: []*anypb.Any{p}})
	printJSON(wireAny{TypeURL: env.TypeUrl, ValueBase64: base64.StdEncoding.EncodeToString(env.Value)})
}

func unwrap() {
	env := readAny()
	if env.TypeUrl != typeURL {
		fail("unsupported sandbox saved-state type %q", env.TypeUrl)
	}
	var p save.Payload
	if err := proto.Unmarshal(env.Value, &p); err != nil {
		fail("unmarshal sandbox saved state: %v", err)
	}
	if p.GetSchemaVersion() != schemaVersion {
		fail("sandbox saved-state schema version %d not supported", p.GetSchemaVersion())
	}
	out := unwrapped{
		SchemaVersion: p.GetSchemaVersion(),
		VM:            wireAny{TypeURL: p.GetVm().GetTypeUrl(), ValueBase64: base64.StdEncoding.EncodeToString(p.GetVm().GetValue())},
		Pods:          []pod{},
	}
	for _, a := range p.GetPods() {
		var ps podsave.Payload
		if a.GetTypeUrl() != podTypeURL || proto.Unmarshal(a.GetValue(), &ps) != nil {
			fail("pod payload %q does not decode", a.GetTypeUrl())
		}
		entry := pod{PodID: ps.GetPodId(), Containers: []string{}}
		for _, c := range ps.GetContainers() {
			var cs lcsave.Payload
			if c.GetTypeUrl() != containerTypeURL || proto.Unmarshal(c.GetValue(), &cs) != nil {
				fail("container payload %q does not decode", c.GetTypeUrl())
			}
			entry.Containers = append(entry.Containers, cs.GetContainerId())
		}
		out.Pods = append(out.Pods, entry)
	}
	printJSON(out)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: save-peer wrap|unwrap")
	}
	switch os.Args[1] {
	case "wrap":
		wrap()
	case "unwrap":
		unwrap()
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
