// bootstrap-go encodes and decodes containerd 2.3's shim bootstrap messages
// with Go's protobuf (google.golang.org/protobuf, as containerd does), from
// code protoc-gen-go generated from proto/containerd/runtime/bootstrap/v1.
//
//	bootstrap-go encode         prints the hex of proto.Marshal of the fixed
//	                            BootstrapParams and BootstrapResult, a line each
//	bootstrap-go decode-params HEX   prints a BootstrapParams as JSON
//	bootstrap-go decode-result HEX   prints a BootstrapResult as JSON
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	bootstrap "ttrpces/shim/bootstrap"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func params() *bootstrap.BootstrapParams {
	dir := "/run/containerd/s"
	return &bootstrap.BootstrapParams{
		InstanceId:             "task-1",
		Namespace:              "default",
		LogLevel:               bootstrap.LogLevel_LOG_LEVEL_DEBUG,
		ContainerdVersion:      "2.3.0",
		ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc",
		ContainerdGrpcAddress:  "/run/containerd/containerd.sock",
		ContainerdBinary:       "/usr/bin/containerd",
		Extensions: []*bootstrap.Extension{
			{Value: &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0x10, 0x01}}},
		},
		SocketDir: &dir,
	}
}

func result() *bootstrap.BootstrapResult {
	return &bootstrap.BootstrapResult{Version: 3, Address: "unix:///run/containerd/s/abc", Protocol: "ttrpc"}
}

func unmarshal(h string, m proto.Message) {
	b, err := hex.DecodeString(h)
	must(err)
	must(proto.Unmarshal(b, m))
}

func printJSON(v any) {
	out, err := json.Marshal(v)
	must(err)
	fmt.Println(string(out))
}

// The params as containerd's shim reads them; Any values by type URL and hex,
// since no registry here knows the runtime options' type.
func decodeParams(h string) {
	p := &bootstrap.BootstrapParams{}
	unmarshal(h, p)
	ext := []map[string]string{}
	for _, e := range p.GetExtensions() {
		ext = append(ext, map[string]string{"typeUrl": e.GetValue().GetTypeUrl(), "value": hex.EncodeToString(e.GetValue().GetValue())})
	}
	printJSON(map[string]any{
		"instanceId": p.GetInstanceId(), "namespace": p.GetNamespace(), "logLevel": p.GetLogLevel().String(),
		"containerdVersion": p.GetContainerdVersion(), "containerdTtrpcAddress": p.GetContainerdTtrpcAddress(),
		"containerdGrpcAddress": p.GetContainerdGrpcAddress(), "containerdBinary": p.GetContainerdBinary(),
		"extensions": ext, "socketDir": p.GetSocketDir(), "hasSocketDir": p.SocketDir != nil,
	})
}

func decodeResult(h string) {
	r := &bootstrap.BootstrapResult{}
	unmarshal(h, r)
	printJSON(map[string]any{"version": r.GetVersion(), "address": r.GetAddress(), "protocol": r.GetProtocol()})
}

func main() {
	if len(os.Args) < 2 {
		must(fmt.Errorf("usage: bootstrap-go encode | decode-params HEX | decode-result HEX"))
	}
	switch os.Args[1] {
	case "encode":
		for _, m := range []proto.Message{params(), result()} {
			b, err := proto.Marshal(m)
			must(err)
			fmt.Println(hex.EncodeToString(b))
		}
	case "decode-params":
		decodeParams(os.Args[2])
	case "decode-result":
		decodeResult(os.Args[2])
	default:
		must(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
