// Command migration-client is the Go side of the Migration interop test: a client
// built with protoc-gen-go and protoc-gen-go-ttrpc from the project's migration
// protos that drives a whole migration against two shims and prints one JSON line
// with everything it observed:
//
//	migration-client workflow --source SOCK --destination SOCK --session ID --sandbox ID
//	    --source-protocol-info-b64 B64 --destination-protocol-info-b64 B64 [--timeout 30s] [--hold]
//
// With --hold it prints NOTIFICATIONS_OPEN once both Notifications streams are
// open and waits for a line on stdin before TransferSandbox, so a test can make
// sure the shims have counted the subscribers first.
//
// The protocol_info bytes belong to the servers' backend, so they are arguments.
// RPC errors are part of the output; a non-zero exit means bad arguments or an
// unreachable socket.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/Microsoft/hcsshim/pkg/migration"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// rpcResult is one call: ok, or the ttrpc status it failed with.
type rpcResult struct {
	Side     string `json:"side,omitempty"`
	RPC      string `json:"rpc,omitempty"`
	OK       bool   `json:"ok"`
	Code     int    `json:"code,omitempty"`
	CodeName string `json:"code_name,omitempty"`
	Message  string `json:"message,omitempty"`
	Ms       int64  `json:"ms"`
}

type notification struct {
	MessageID  uint32  `json:"message_id"`
	Origin     string  `json:"origin"`
	Phase      string  `json:"phase"`
	State      string  `json:"state"`
	BlackoutMs *uint64 `json:"blackout_ms,omitempty"`
	HasTimes   bool    `json:"has_times"`
}

type sideReport struct {
	Notifications []notification `json:"notifications"`
	// "EOF" when the stream ended cleanly, else the error or "still open".
	StreamEnd string `json:"stream_end"`
}

type report struct {
	OK                bool                 `json:"ok"`
	Error             string               `json:"error,omitempty"`
	ConfigTypeURL     string               `json:"config_type_url"`
	ConfigValueBase64 string               `json:"config_value_base64"`
	Calls             []rpcResult          `json:"calls"`
	Source            *sideReport          `json:"source"`
	Destination       *sideReport          `json:"destination"`
	Checks            map[string]rpcResult `json:"checks"`
	Ms                int64                `json:"ms"`
}

// side is one shim: its client and the Notifications stream read in the background.
type side struct {
	name     string
	client   migration.MigrationClient
	mu       sync.Mutex // guards report once the stream is read
	report   *sideReport
	terminal chan notification // the first DONE or FAILED
	ended    chan struct{}     // the stream's end
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "workflow" {
		fmt.Fprintln(os.Stderr, "usage: migration-client workflow --source SOCK --destination SOCK --session ID --sandbox ID --source-protocol-info-b64 B64 --destination-protocol-info-b64 B64 [--timeout 30s]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("workflow", flag.ExitOnError)
	srcSock := fs.String("source", "", "source shim socket")
	dstSock := fs.String("destination", "", "destination shim socket")
	session := fs.String("session", "", "migration session id")
	sandbox := fs.String("sandbox", "", "sandbox id on the destination")
	srcInfo := fs.String("source-protocol-info-b64", "", "source protocol_info, base64")
	dstInfo := fs.String("destination-protocol-info-b64", "", "destination protocol_info, base64")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole workflow")
	hold := fs.Bool("hold", false, "wait for a line on stdin between Notifications and TransferSandbox")
	fs.Parse(os.Args[2:])
	srcPI, err1 := base64.StdEncoding.DecodeString(*srcInfo)
	dstPI, err2 := base64.StdEncoding.DecodeString(*dstInfo)
	if *srcSock == "" || *dstSock == "" || *session == "" || *sandbox == "" || err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "migration-client: --source, --destination, --session, --sandbox and base64 protocol infos are required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	src, dst := dial("source", *srcSock), dial("destination", *dstSock)
	beforeTransfer := func() {}
	if *hold {
		beforeTransfer = func() {
			fmt.Println("NOTIFICATIONS_OPEN")
			bufio.NewReader(os.Stdin).ReadString('\n')
		}
	}
	r := workflow(ctx, src, dst, *session, *sandbox, srcPI, dstPI, *timeout, beforeTransfer)
	src.mu.Lock()
	dst.mu.Lock()
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

func dial(name, socket string) *side {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "migration-client: %s: %v\n", name, err)
		os.Exit(1)
	}
	return &side{
		name:     name,
		client:   migration.NewMigrationClient(ttrpc.NewClient(conn)),
		report:   &sideReport{Notifications: []notification{}, StreamEnd: "not opened"},
		terminal: make(chan notification, 1),
		ended:    make(chan struct{}),
	}
}

func result(err error, start time.Time) rpcResult {
	r := rpcResult{OK: err == nil, Ms: time.Since(start).Milliseconds()}
	if err != nil {
		st := status.Convert(err)
		r.Code, r.CodeName, r.Message = int(st.Code()), st.Code().String(), st.Message()
	}
	return r
}

func workflow(ctx context.Context, src, dst *side, session, sandbox string, srcPI, dstPI []byte, timeout time.Duration, beforeTransfer func()) *report {
	start := time.Now()
	r := &report{Calls: []rpcResult{}, Source: src.report, Destination: dst.report, Checks: map[string]rpcResult{}}
	defer func() { r.Ms = time.Since(start).Milliseconds() }()
	// call records one workflow RPC; false stops the workflow.
	call := func(s *side, rpc string, fn func() error) bool {
		res := result(fn(), time.Now())
		res.Side, res.RPC = s.name, rpc
		r.Calls = append(r.Calls, res)
		if !res.OK && r.Error == "" {
			r.Error = fmt.Sprintf("%s %s: %s: %s", s.name, rpc, res.CodeName, res.Message)
		}
		return res.OK
	}
	check := func(name string, fn func() error) { r.Checks[name] = result(fn(), time.Now()) }
	opts := &migration.InitializeOptions{MemoryTransport: migration.MemoryTransport_MEMORY_TRANSPORT_TCP}

	var exported *migration.PrepareAndExportSandboxResponse
	if !call(src, "PrepareAndExportSandbox", func() (err error) {
		exported, err = src.client.PrepareAndExportSandbox(ctx, &migration.PrepareAndExportSandboxRequest{SessionId: session, InitOptions: opts})
		return err
	}) {
		return r
	}
	config := exported.GetConfig()
	r.ConfigTypeURL, r.ConfigValueBase64 = config.GetTypeUrl(), base64.StdEncoding.EncodeToString(config.GetValue())
	if !call(dst, "ImportSandbox", func() error {
		_, err := dst.client.ImportSandbox(ctx, &migration.ImportSandboxRequest{SessionId: session, SandboxId: sandbox, Config: config})
		return err
	}) {
		return r
	}
	check("wrong_order", func() error { // Transfer before Prepare
		_, err := dst.client.TransferSandbox(ctx, &migration.TransferSandboxRequest{SessionId: session})
		return err
	})
	if !call(dst, "PrepareSandbox", func() error {
		_, err := dst.client.PrepareSandbox(ctx, &migration.PrepareSandboxRequest{SessionId: session, InitOptions: opts})
		return err
	}) {
		return r
	}
	check("wrong_session", func() error {
		_, err := src.client.CreateDuplicateSocket(ctx, &migration.CreateDuplicateSocketRequest{SessionId: session + "-wrong", ProtocolInfo: srcPI})
		return err
	})
	for _, s := range []struct {
		side *side
		info []byte
	}{{src, srcPI}, {dst, dstPI}} {
		if !call(s.side, "CreateDuplicateSocket", func() error {
			_, err := s.side.client.CreateDuplicateSocket(ctx, &migration.CreateDuplicateSocketRequest{SessionId: session, ProtocolInfo: s.info})
			return err
		}) {
			return r
		}
	}
	check("duplicate_socket", func() error {
		_, err := src.client.CreateDuplicateSocket(ctx, &migration.CreateDuplicateSocketRequest{SessionId: session, ProtocolInfo: srcPI})
		return err
	})
	for _, s := range []*side{src, dst} {
		if !call(s, "Notifications", func() error { return s.watch(ctx, session) }) {
			return r
		}
	}
	beforeTransfer()
	for _, s := range []*side{src, dst} {
		if !call(s, "TransferSandbox", func() error {
			_, err := s.client.TransferSandbox(ctx, &migration.TransferSandboxRequest{SessionId: session, Timeout: durationpb.New(timeout)})
			return err
		}) {
			return r
		}
	}
	success := true
	for _, s := range []*side{src, dst} {
		select {
		case n := <-s.terminal:
			success = success && n.Phase == migration.Phase_PHASE_DONE.String() && n.State == migration.PhaseState_PHASE_STATE_SUCCESS.String()
		case <-ctx.Done():
			r.Error = fmt.Sprintf("%s: no terminal phase before the timeout", s.name)
			return r
		}
	}
	srcAction, dstAction := migration.FinalizeAction_FINALIZE_ACTION_STOP, migration.FinalizeAction_FINALIZE_ACTION_RESUME
	if !success {
		srcAction, dstAction = dstAction, srcAction
	}
	for _, f := range []struct {
		side   *side
		action migration.FinalizeAction
	}{{src, srcAction}, {dst, dstAction}} {
		if !call(f.side, "FinalizeSandbox", func() error {
			_, err := f.side.client.FinalizeSandbox(ctx, &migration.FinalizeSandboxRequest{SessionId: session, Action: f.action})
			return err
		}) {
			return r
		}
	}
	for _, s := range []*side{src, dst} {
		if !call(s, "Cleanup", func() error {
			_, err := s.client.Cleanup(ctx, &migration.CleanupRequest{SessionId: session})
			return err
		}) {
			return r
		}
	}
	for _, s := range []*side{src, dst} {
		select {
		case <-s.ended:
		case <-ctx.Done():
		}
	}
	if !success && r.Error == "" {
		r.Error = "the migration did not end in PHASE_DONE / PHASE_STATE_SUCCESS on both sides"
	}
	r.OK = r.Error == ""
	return r
}

// watch opens the side's Notifications stream and reads it in the background
// until it ends; the first DONE or FAILED goes to s.terminal.
func (s *side) watch(ctx context.Context, session string) error {
	stream, err := s.client.Notifications(ctx, &migration.NotificationsRequest{SessionId: session})
	if err != nil {
		return err
	}
	s.report.StreamEnd = "still open"
	go func() {
		defer close(s.ended)
		seenTerminal := false
		for {
			msg, err := stream.Recv()
			if err != nil {
				s.mu.Lock()
				s.report.StreamEnd = "EOF"
				if !errors.Is(err, io.EOF) {
					s.report.StreamEnd = err.Error()
				}
				s.mu.Unlock()
				return
			}
			n := msg.GetNotification()
			seen := notification{
				MessageID: msg.GetMessageId(),
				Origin:    n.GetOrigin().String(),
				Phase:     n.GetPhase().String(),
				State:     n.GetState().String(),
				HasTimes:  msg.GetStartTime() != nil && msg.GetUpdateTime() != nil,
			}
			if b := n.GetBlackoutExited(); b != nil {
				ms := b.GetBlackoutDurationMilliseconds()
				seen.BlackoutMs = &ms
			}
			s.mu.Lock()
			s.report.Notifications = append(s.report.Notifications, seen)
			s.mu.Unlock()
			phase := n.GetPhase()
			if !seenTerminal && (phase == migration.Phase_PHASE_DONE || phase == migration.Phase_PHASE_FAILED) {
				seenTerminal = true
				s.terminal <- seen
			}
		}
	}()
	return nil
}
