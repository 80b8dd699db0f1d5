// nri-go-plugin: an NRI plugin built on containerd/nri pkg/stub (Go's own
// plugin SDK), for the TypeScript test runtime to drive over our multiplexer.
// Every request it gets is printed on stdout as one JSON line; stdin takes
// {"op":"updateContainers","updates":[...]} lines (protojson ContainerUpdate).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/encoding/protojson"
)

var (
	outMu sync.Mutex
	quiet bool
)

func emit(v map[string]any) {
	if quiet {
		return
	}
	b, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func annotationBytes(c *api.Container) int {
	n := 0
	for k, v := range c.GetAnnotations() {
		n += len(k) + len(v)
	}
	return n
}

type plugin struct{}

func (plugin) Configure(_ context.Context, config, runtime, version string) (stub.EventMask, error) {
	emit(map[string]any{"event": "Configure", "config": config, "runtime": runtime, "version": version})
	return 0, nil
}

func (plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	ids := []string{}
	for _, c := range ctrs {
		ids = append(ids, c.Id)
	}
	emit(map[string]any{"event": "Synchronize", "pods": len(pods), "containers": ids})
	return nil, nil
}

func (plugin) Shutdown(context.Context) { emit(map[string]any{"event": "Shutdown"}) }

func (plugin) RunPodSandbox(_ context.Context, p *api.PodSandbox) error {
	emit(map[string]any{"event": "RunPodSandbox", "pod": p.Id})
	return nil
}

func (plugin) StopPodSandbox(_ context.Context, p *api.PodSandbox) error {
	emit(map[string]any{"event": "StopPodSandbox", "pod": p.Id})
	return nil
}

// CreateContainer adds an env variable and an annotation; a container
// annotated "echo-bytes: N" also gets an N-byte env value back (a large reply).
func (plugin) CreateContainer(_ context.Context, p *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	emit(map[string]any{"event": "CreateContainer", "pod": p.Id, "container": c.Id, "annotationBytes": annotationBytes(c)})
	if c.Name == "fail" {
		return nil, nil, fmt.Errorf("go plugin refuses container %s", c.Id)
	}
	adjust := &api.ContainerAdjustment{}
	adjust.AddEnv("GO_PLUGIN", "1")
	adjust.AddAnnotation("go-plugin/seen", strconv.Itoa(annotationBytes(c)))
	if n, err := strconv.Atoi(c.Annotations["echo-bytes"]); err == nil {
		adjust.AddEnv("ECHO", strings.Repeat("e", n))
	}
	return adjust, nil, nil
}

func (plugin) StartContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	emit(map[string]any{"event": "StartContainer", "pod": p.Id, "container": c.Id})
	return nil
}

func (plugin) UpdateContainer(_ context.Context, p *api.PodSandbox, c *api.Container, r *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	emit(map[string]any{"event": "UpdateContainer", "pod": p.Id, "container": c.Id, "cpuShares": r.GetCpu().GetShares().GetValue()})
	u := &api.ContainerUpdate{ContainerId: c.Id}
	u.SetLinuxMemoryLimit(256 << 20)
	return []*api.ContainerUpdate{u}, nil
}

func (plugin) StopContainer(_ context.Context, p *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	emit(map[string]any{"event": "StopContainer", "pod": p.Id, "container": c.Id})
	return nil, nil
}

func (plugin) RemoveContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	emit(map[string]any{"event": "RemoveContainer", "pod": p.Id, "container": c.Id})
	return nil
}

func main() {
	socket := flag.String("socket", "", "the runtime's NRI socket")
	name := flag.String("name", "go-plugin", "plugin name")
	idx := flag.String("idx", "50", "plugin index")
	flag.BoolVar(&quiet, "quiet", false, "print no events (benchmarks)")
	flag.Parse()
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)

	s, err := stub.New(plugin{}, stub.WithSocketPath(*socket), stub.WithPluginName(*name), stub.WithPluginIdx(*idx),
		stub.WithOnClose(func() {
			emit(map[string]any{"event": "closed"})
			os.Exit(0)
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		in := bufio.NewReaderSize(os.Stdin, 1<<20)
		for {
			line, err := in.ReadBytes('\n')
			if err != nil {
				s.Stop()
				return
			}
			var c struct {
				Op      string            `json:"op"`
				Updates []json.RawMessage `json:"updates"`
			}
			if err := json.Unmarshal(line, &c); err != nil {
				panic(err)
			}
			var updates []*api.ContainerUpdate
			for _, raw := range c.Updates {
				u := &api.ContainerUpdate{}
				if err := protojson.Unmarshal(raw, u); err != nil {
					panic(err)
				}
				updates = append(updates, u)
			}
			failed, err := s.UpdateContainers(updates)
			ids := []string{}
			for _, f := range failed {
				ids = append(ids, f.ContainerId)
			}
			e := map[string]any{"event": "updateContainers", "failed": ids}
			if err != nil {
				e["error"] = err.Error()
			}
			emit(e)
		}
	}()
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "plugin exited with error:", err)
		os.Exit(1)
	}
}
