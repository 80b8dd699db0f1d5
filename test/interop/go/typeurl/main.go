// Command typeurl-peer checks ttrpc-es's typeurl and StatedState against
// containerd's Go typeurl v2:
//
//	typeurl-peer encode        MarshalAny of a fixed StatedState sample
//	typeurl-peer encode-proto  MarshalAny of a wrapperspb.StringValue (bare type URL)
//	typeurl-peer decode        UnmarshalAny of the {"type_url","value_base64"} on stdin,
//	                           printed as JSON
//
// encode modes print one line {"type_url": ..., "value_base64": ...}.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The Go side of the StatedState contract in src/migration/stated-state.ts; the
// struct tags are the contract.
type StatedState struct {
	SchemaVersion uint32            `json:"schema_version,omitempty"`
	SandboxID     string            `json:"sandbox_id,omitempty"`
	SessionID     string            `json:"session_id,omitempty"`
	VM            *StatedVM         `json:"vm,omitempty"`
	Containers    []StatedContainer `json:"containers,omitempty"`
	InitOptions   *InitOptions      `json:"init_options,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// InitOptions mirrors hcsschema.MigrationInitializeOptions, internal to hcsshim.
type InitOptions struct {
	Origin                           string          `json:"Origin,omitempty"`
	MemoryTransport                  string          `json:"MemoryTransport,omitempty"`
	MemoryTransferThrottleParams     *ThrottleParams `json:"MemoryTransferThrottleParams,omitempty"`
	CompressionSettings              *Compression    `json:"CompressionSettings,omitempty"`
	ChecksumVerification             bool            `json:"ChecksumVerification,omitempty"`
	PerfTracingEnabled               bool            `json:"PerfTracingEnabled,omitempty"`
	CancelIfBlackoutThresholdExceeds bool            `json:"CancelIfBlackoutThresholdExceeds,omitempty"`
	PrepareMemoryTransferMode        bool            `json:"PrepareMemoryTransferMode,omitempty"`
}

// ThrottleParams fields are pointers, so a set 0 or false is still written.
type ThrottleParams struct {
	SkipThrottling                              *bool    `json:"SkipThrottling,omitempty"`
	ThrottlingScale                             *float64 `json:"ThrottlingScale,omitempty"`
	MinimumThrottlePercentage                   *uint8   `json:"MinimumThrottlePercentage,omitempty"`
	TargetNumberOfBrownoutTransferPasses        *uint32  `json:"TargetNumberOfBrownoutTransferPasses,omitempty"`
	StartingBrownoutPassNumberForThrottling     *uint32  `json:"StartingBrownoutPassNumberForThrottling,omitempty"`
	MaximumNumberOfBrownoutTransferPasses       *uint32  `json:"MaximumNumberOfBrownoutTransferPasses,omitempty"`
	TargetBlackoutTransferTime                  *uint32  `json:"TargetBlackoutTransferTime,omitempty"`
	BlackoutTimeThresholdForCancellingMigration *uint32  `json:"BlackoutTimeThresholdForCancellingMigration,omitempty"`
}

type Compression struct {
	ThrottleWorkerCount *uint32 `json:"ThrottleWorkerCount,omitempty"`
}

type StatedVM struct {
	GuestOS        string        `json:"guest_os,omitempty"`
	ProcessorCount uint32        `json:"processor_count,omitempty"`
	Memory         *StatedMemory `json:"memory,omitempty"`
}

type StatedMemory struct {
	SizeBytes uint64 `json:"size_bytes,omitempty"`
	PageSize  uint32 `json:"page_size,omitempty"`
}

type StatedContainer struct {
	ID     string `json:"id,omitempty"`
	Image  string `json:"image,omitempty"`
	Bundle string `json:"bundle,omitempty"`
	State  string `json:"state,omitempty"`
	Pid    uint32 `json:"pid,omitempty"`
}

func init() {
	typeurl.Register(&StatedState{}, "sandbox-spec/vm/v2/StatedState", "StatedState")
}

func ptr[T any](v T) *T { return &v }

// sample exercises what Go's encoding/json does that a TypeScript encoder might
// not: HTML escaping (<, >, &), U+2028, sorted map keys, omitted empty fields, and
// pointer fields set to zero values, which are written.
func sample() *StatedState {
	return &StatedState{
		SchemaVersion: 1,
		SandboxID:     "sandbox-1",
		SessionID:     "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
		VM: &StatedVM{
			GuestOS:        "linux",
			ProcessorCount: 2,
			Memory:         &StatedMemory{SizeBytes: 64 << 20, PageSize: 4096},
		},
		Containers: []StatedContainer{
			{ID: "c1", Image: "docker.io/library/busybox:latest", Bundle: "/run/c1", State: "running", Pid: 42},
			{ID: "c2", State: "created"},
		},
		InitOptions: &InitOptions{
			Origin:          "Source",
			MemoryTransport: "TCP",
			MemoryTransferThrottleParams: &ThrottleParams{
				SkipThrottling:             ptr(false),
				ThrottlingScale:            ptr(0.5),
				MinimumThrottlePercentage:  ptr(uint8(0)),
				TargetBlackoutTransferTime: ptr(uint32(250)),
			},
			CompressionSettings:  &Compression{ThrottleWorkerCount: ptr(uint32(4))},
			ChecksumVerification: true,
		},
		Annotations: map[string]string{
			"z-last":  "a<b>&c",
			"a-first": "line\u2028separator",
			"Ünicode": "ü €",
		},
	}
}

type wire struct {
	TypeURL     string `json:"type_url"`
	ValueBase64 string `json:"value_base64"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: typeurl-peer encode|encode-proto|decode")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "encode":
		err = encode(sample())
	case "encode-proto":
		err = encode(wrapperspb.String("hello"))
	case "decode":
		err = decode(os.Stdin)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func encode(v interface{}) error {
	a, err := typeurl.MarshalAny(v)
	if err != nil {
		return err
	}
	return printJSON(wire{TypeURL: a.GetTypeUrl(), ValueBase64: base64.StdEncoding.EncodeToString(a.GetValue())})
}

func decode(r io.Reader) error {
	var in wire
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	value, err := base64.StdEncoding.DecodeString(in.ValueBase64)
	if err != nil {
		return err
	}
	v, err := typeurl.UnmarshalByTypeURL(in.TypeURL, value)
	if err != nil {
		return err
	}
	return printJSON(v)
}

func printJSON(v interface{}) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}
