// nri-runtime: an NRI runtime built from containerd/nri pkg/adaptation (the
// code containerd embeds), driven line by line from stdin by the TypeScript
// interop tests. It listens on --socket for external plugins.
//
// stdin, one JSON object a line:   {"op": "...", "pod": {...}, "container": {...}, "linuxResources": {...}, "plugins": N}
// stdout, one JSON object a line:  {"op": "...", "response": {...}, "error": "..."} and unsolicited
// {"op": "synchronized", "updates": [...]}, {"op": "updateContainers", "request": [...]}.
// Messages are protojson (field names in lowerCamelCase), as Go decoded them.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/log"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

type command struct {
	Op             string          `json:"op"`
	Pod            json.RawMessage `json:"pod"`
	Container      json.RawMessage `json:"container"`
	LinuxResources json.RawMessage `json:"linuxResources"`
	Plugins        int             `json:"plugins"`
	Seconds        float64         `json:"seconds"`
}

var (
	outMu sync.Mutex
	out   = bufio.NewWriterSize(os.Stdout, 1<<20)
)

func emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	outMu.Lock()
	defer outMu.Unlock()
	out.Write(b)
	out.WriteString("\n")
	out.Flush()
}

func pj(m proto.Message) json.RawMessage {
	if m == nil || reflect.ValueOf(m).IsNil() {
		return json.RawMessage("null")
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func pjList[T proto.Message](ms []T) []json.RawMessage {
	l := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		l = append(l, pj(m))
	}
	return l
}

func parse(raw json.RawMessage, m proto.Message) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	if err := protojson.Unmarshal(raw, m); err != nil {
		panic(fmt.Sprintf("bad message %T: %v", m, err))
	}
}

func errText(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

// pluginCount reads Adaptation.plugins: the plugins that registered, were
// configured and synchronized. Read under the adaptation's own lock.
func pluginCount(r *nri.Adaptation) int {
	r.Lock()
	defer r.Unlock()
	return reflect.ValueOf(r).Elem().FieldByName("plugins").Len()
}

func main() {
	socket := flag.String("socket", "", "socket to listen on for plugins")
	syncPods := flag.Int("sync-pods", 2, "pods (one container each) reported to a plugin at Synchronize")
	requestTimeout := flag.Duration("request-timeout", 10*time.Second, "per-request timeout (NRI's default is 2s)")
	pluginPath := flag.String("plugin-path", "", "directory of plugins to launch at start (NN-name executables)")
	flag.Parse()
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)
	_ = log.Get()
	nri.SetPluginRequestTimeout(*requestTimeout)

	var pods []*nri.PodSandbox
	var ctrs []*nri.Container
	for i := 0; i < *syncPods; i++ {
		pods = append(pods, &nri.PodSandbox{Id: fmt.Sprintf("sync-pod-%d", i), Name: "sync", Namespace: "default"})
		ctrs = append(ctrs, &nri.Container{Id: fmt.Sprintf("sync-ctr-%d", i), PodSandboxId: fmt.Sprintf("sync-pod-%d", i),
			Name: "sync", State: nri.ContainerState_CONTAINER_RUNNING})
	}
	syncFn := func(ctx context.Context, cb nri.SyncCB) error {
		updates, err := cb(ctx, pods, ctrs)
		emit(map[string]any{"op": "synchronized", "updates": pjList(updates), "error": errText(err)})
		return err
	}
	updateFn := func(ctx context.Context, req []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) {
		var failed []*nri.ContainerUpdate
		for _, u := range req {
			if strings.HasPrefix(u.ContainerId, "fail-") {
				failed = append(failed, u)
			}
		}
		emit(map[string]any{"op": "updateContainers", "request": pjList(req)})
		return failed, nil
	}
	empty, err := os.MkdirTemp("", "nri-runtime-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(empty)
	plugins := empty
	if *pluginPath != "" {
		plugins = *pluginPath
	}
	r, err := nri.New("go-adaptation", "0.6.1", syncFn, updateFn,
		nri.WithSocketPath(*socket), nri.WithPluginPath(plugins), nri.WithPluginConfigPath(empty))
	if err != nil {
		panic(err)
	}
	if err := r.Start(); err != nil {
		panic(err)
	}
	emit(map[string]any{"op": "ready"})

	ctx := context.Background()
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			// stdin closed: the test is done with us (or died); go away like a runtime that stops.
			r.Stop()
			return
		}
		var c command
		if err := json.Unmarshal(line, &c); err != nil {
			panic(err)
		}
		pod := &nri.PodSandbox{}
		ctr := &nri.Container{}
		res := &nri.LinuxResources{}
		parse(c.Pod, pod)
		parse(c.Container, ctr)
		parse(c.LinuxResources, res)
		evt := &nri.StateChangeEvent{Pod: pod, Container: ctr}
		reply := map[string]any{"op": c.Op}
		switch c.Op {
		case "wait":
			for pluginCount(r) < c.Plugins {
				time.Sleep(5 * time.Millisecond)
			}
		case "RunPodSandbox":
			reply["error"] = errText(r.RunPodSandbox(ctx, evt))
		case "StopPodSandbox":
			reply["error"] = errText(r.StopPodSandbox(ctx, evt))
		case "RemovePodSandbox":
			reply["error"] = errText(r.RemovePodSandbox(ctx, evt))
		case "CreateContainer":
			rpl, err := r.CreateContainer(ctx, &nri.CreateContainerRequest{Pod: pod, Container: ctr})
			reply["response"], reply["error"] = pj(rpl), errText(err)
		case "PostCreateContainer":
			reply["error"] = errText(r.PostCreateContainer(ctx, evt))
		case "StartContainer":
			reply["error"] = errText(r.StartContainer(ctx, evt))
		case "PostStartContainer":
			reply["error"] = errText(r.PostStartContainer(ctx, evt))
		case "UpdateContainer":
			rpl, err := r.UpdateContainer(ctx, &nri.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: res})
			reply["response"], reply["error"] = pj(rpl), errText(err)
		case "PostUpdateContainer":
			reply["error"] = errText(r.PostUpdateContainer(ctx, evt))
		case "StopContainer":
			rpl, err := r.StopContainer(ctx, &nri.StopContainerRequest{Pod: pod, Container: ctr})
			reply["response"], reply["error"] = pj(rpl), errText(err)
		case "RemoveContainer":
			reply["error"] = errText(r.RemoveContainer(ctx, evt))
		case "plugins":
			reply["plugins"] = pluginCount(r)
		case "bench-CreateContainer":
			// CreateContainer round trips, one at a time, for the given time (bench/nri-bench.ts).
			req := &nri.CreateContainerRequest{Pod: pod, Container: ctr}
			ops, start := 0, time.Now()
			deadline := start.Add(time.Duration(c.Seconds * float64(time.Second)))
			for time.Now().Before(deadline) {
				if _, err := r.CreateContainer(ctx, req); err != nil {
					reply["error"] = err.Error()
					break
				}
				ops++
			}
			reply["ops"], reply["seconds"] = ops, time.Since(start).Seconds()
		default:
			reply["error"] = "unknown op " + c.Op
		}
		emit(reply)
	}
}
