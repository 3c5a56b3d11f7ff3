package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	sourcedir "github.com/charter-sh/charter/source/dir"
)

func TestParseShard(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Shard
		wantErr string
	}{
		"first of three":     {in: "0/3", want: Shard{Index: 0, Count: 3}},
		"last of three":      {in: "2/3", want: Shard{Index: 2, Count: 3}},
		"one shard":          {in: "0/1", want: Shard{Index: 0, Count: 1}},
		"index out of range": {in: "3/3", wantErr: "0 ≤ INDEX < COUNT"},
		"negative index":     {in: "-1/3", wantErr: "0 ≤ INDEX < COUNT"},
		"zero count":         {in: "0/0", wantErr: "0 ≤ INDEX < COUNT"},
		"no slash":           {in: "1", wantErr: "want INDEX/COUNT"},
		"not numbers":        {in: "a/b", wantErr: "as numbers"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseShard(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseShard(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseShard(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// The hash decides which replica writes a release: it must never change
// between versions, or two shards would both (or neither) own a release
// during an upgrade.
func TestShardOfIsStable(t *testing.T) {
	// Computed once with hash/fnv New32a and pinned.
	pinned := map[string][3]int{ // release → shard among 2, 3, 7
		"web":          {ShardOf("web", 2), ShardOf("web", 3), ShardOf("web", 7)},
		"taco-tuesday": {ShardOf("taco-tuesday", 2), ShardOf("taco-tuesday", 3), ShardOf("taco-tuesday", 7)},
	}
	want := map[string][3]int{"web": {1, 1, 2}, "taco-tuesday": {0, 0, 4}}
	for name, got := range pinned {
		if got != want[name] {
			t.Errorf("shards of %q among 2, 3, 7 = %v, want %v (the hash changed)", name, got, want[name])
		}
	}
}

func TestEveryReleaseHasExactlyOneShard(t *testing.T) {
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("release-%d", i))
	}
	for _, n := range []int{1, 2, 3, 5} {
		owners := map[string]int{}
		sizes := make([]int, n)
		for i := range n {
			for _, name := range (Shard{Index: i, Count: n}).Filter(names) {
				owners[name]++
				sizes[i]++
			}
		}
		for _, name := range names {
			if owners[name] != 1 {
				t.Errorf("%d shards: %s is owned by %d shards, want 1", n, name, owners[name])
			}
		}
		for i, s := range sizes {
			if n > 1 && s < len(names)/n/2 {
				t.Errorf("%d shards: shard %d has %d of %d releases: the hash spreads badly", n, i, s, len(names))
			}
		}
	}
}

func TestShardNames(t *testing.T) {
	unsharded, sharded := Shard{}, Shard{Index: 1, Count: 3}
	if unsharded.HeartbeatLease() != "charter-daemon" || unsharded.LeaderLease() != "charter-daemon-leader" {
		t.Errorf("unsharded leases: %s, %s", unsharded.HeartbeatLease(), unsharded.LeaderLease())
	}
	if sharded.HeartbeatLease() != "charter-daemon-1-of-3" || sharded.LeaderLease() != "charter-daemon-leader-1-of-3" {
		t.Errorf("sharded leases: %s, %s", sharded.HeartbeatLease(), sharded.LeaderLease())
	}
	if !unsharded.Owns("anything") {
		t.Error("an unsharded daemon must own every release")
	}
}

// shardDaemon is one daemon of a sharded pair over the fixture's state,
// remembering which releases it wrote objects of.
type shardDaemon struct {
	d  *Daemon
	mu sync.Mutex
	// wrote: release → object events of this daemon's reconciles
	wrote map[string][]string
}

func (s *shardDaemon) actions(release string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrote[release]
}

func (f *fixture) shardDaemon(t *testing.T, shard Shard) *shardDaemon {
	t.Helper()
	src, err := sourcedir.New(f.dir.Root(), source.Options{CacheDir: t.TempDir(), Debounce: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	set := NewSourceSet([]string{src.String()})
	s := &shardDaemon{wrote: map[string][]string{}}
	r := &Reconciler{State: set, Records: f.recs, Cluster: f.recon.Cluster, Timeout: time.Minute, Progress: func(e Event) {
		if e.Object != "" { // any object event, "unchanged" included: it was reconciled here
			s.mu.Lock()
			s.wrote[e.Release] = append(s.wrote[e.Release], e.Action)
			s.mu.Unlock()
		}
	}}
	s.d = &Daemon{Reconciler: r, Set: set, Interval: time.Hour, Resync: time.Hour, Workers: 4, Shard: shard,
		Sources:   []Watched{{Source: src}},
		Heartbeat: &Heartbeat{Client: f.kube, Namespace: f.ns, Identity: "shard-" + shard.String(), Shard: shard}}
	return s
}

// Two shards over one state: every release is applied exactly once, by
// the shard its name hashes to, and so is the uninstall of a removed one.
func TestShardsSplitReleases(t *testing.T) {
	f := newFixture(t)
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("r%d", i)
		names = append(names, name)
		f.declare(name, "  replicaCount: 1\n")
	}
	ctx, cancel := context.WithCancel(context.Background())
	shards := []*shardDaemon{f.shardDaemon(t, Shard{Index: 0, Count: 2}), f.shardDaemon(t, Shard{Index: 1, Count: 2})}
	var wg sync.WaitGroup
	for _, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.d.Run(ctx); err != nil {
				t.Errorf("shard %s: %v", s.d.Shard, err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	f.eventually("every release deployed", 90*time.Second, func() bool {
		for _, n := range names {
			if f.deployedRevision(n) != 1 {
				return false
			}
		}
		return true
	})
	for _, n := range names {
		owner := ShardOf(n, 2)
		if len(shards[owner].actions(n)) == 0 {
			t.Errorf("%s: its shard %d applied nothing", n, owner)
		}
		if other := shards[1-owner].actions(n); len(other) > 0 {
			t.Errorf("%s: shard %d (not its own) wrote %v", n, 1-owner, other)
		}
	}

	// Each shard renews its own heartbeat; together they serve the source.
	src := shards[0].d.Sources[0].Source.String()
	f.eventually("both shard heartbeats", 10*time.Second, func() bool {
		leases, err := HeartbeatLeases(ctx, f.kube, f.ns)
		return err == nil && len(leases) == 2 && leases[0].Name == "charter-daemon-0-of-2" && leases[1].Name == "charter-daemon-1-of-2"
	})
	if !DaemonServes(ctx, f.kube, f.ns, src) {
		t.Error("DaemonServes = false with every shard beating")
	}

	// A declaration removed: only its shard uninstalls it.
	gone := names[3]
	owner := ShardOf(gone, 2)
	before := len(shards[owner].actions(gone))
	if err := os.Remove(filepath.Join(f.dir.Root(), "releases", gone+".yaml")); err != nil {
		t.Fatal(err)
	}
	f.eventually(gone+" uninstalled", 30*time.Second, func() bool {
		_, err := f.recs.History(ctx, gone)
		return errors.Is(err, record.ErrNotFound)
	})
	if len(shards[owner].actions(gone)) == before {
		t.Errorf("%s: its shard deleted nothing", gone)
	}
	if other := shards[1-owner].actions(gone); len(other) > 0 {
		t.Errorf("%s: shard %d (not its own) wrote %v", gone, 1-owner, other)
	}
}

// `charter deploy` waits for the daemon only when every release is served:
// one shard of two beating is not enough.
func TestDaemonServesNeedsEveryShard(t *testing.T) {
	env := testenv.Get(t)
	ns := env.NewNamespace(t)
	cl, err := NewCluster(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const loc = "https://git.example.com/state.git"
	beat := func(s Shard) {
		t.Helper()
		hb := &Heartbeat{Client: cl.Typed, Namespace: ns, Identity: "d-" + s.String(), Shard: s}
		if err := hb.Renew(ctx, []string{loc}, HeartbeatStatus{}); err != nil {
			t.Fatal(err)
		}
	}
	beat(Shard{Index: 0, Count: 3})
	beat(Shard{Index: 2, Count: 3})
	if DaemonServes(ctx, cl.Typed, ns, loc) {
		t.Error("DaemonServes = true with shard 1/3 missing")
	}
	beat(Shard{Index: 1, Count: 3})
	if !DaemonServes(ctx, cl.Typed, ns, loc) {
		t.Error("DaemonServes = false with every shard of 3 beating")
	}
	if DaemonServes(ctx, cl.Typed, ns, "https://git.example.com/other.git") {
		t.Error("DaemonServes = true for a source no daemon follows")
	}
}
