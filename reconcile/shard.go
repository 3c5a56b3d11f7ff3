package reconcile

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one part of the releases when several daemons split them: a
// release belongs to shard fnv32a(name) % Count. The zero value (and
// Count ≤ 1) is unsharded: every release belongs to it.
type Shard struct {
	Index int
	Count int
}

// ParseShard reads "i/n" with 0 ≤ i < n.
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want INDEX/COUNT, e.g. 0/3", s)
	}
	idx, err1 := strconv.Atoi(strings.TrimSpace(i))
	cnt, err2 := strconv.Atoi(strings.TrimSpace(n))
	if err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want INDEX/COUNT as numbers, e.g. 0/3", s)
	}
	if cnt < 1 || idx < 0 || idx >= cnt {
		return Shard{}, fmt.Errorf("shard %q: want 0 ≤ INDEX < COUNT", s)
	}
	return Shard{Index: idx, Count: cnt}, nil
}

// Sharded reports whether the releases are split at all.
func (s Shard) Sharded() bool { return s.Count > 1 }

// String is "i/n", or "" when unsharded.
func (s Shard) String() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Owns reports whether the release belongs to this shard. The hash is
// stable across processes, versions and platforms, so every replica agrees.
func (s Shard) Owns(release string) bool {
	if !s.Sharded() {
		return true
	}
	return ShardOf(release, s.Count) == s.Index
}

// ShardOf is the shard a release belongs to among n.
func ShardOf(release string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(release))
	return int(h.Sum32() % uint32(n))
}

// Filter keeps the releases of this shard, in order.
func (s Shard) Filter(names []string) []string {
	if !s.Sharded() {
		return names
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if s.Owns(n) {
			out = append(out, n)
		}
	}
	return out
}

// suffix names what belongs to one shard: "" unsharded, "-i-of-n" else.
func (s Shard) suffix() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("-%d-of-%d", s.Index, s.Count)
}

// LeaderLease is the name of the leader election Lease of this shard's
// replicas: replicas of one shard compete, shards do not.
func (s Shard) LeaderLease() string { return "charter-daemon-leader" + s.suffix() }

// HeartbeatLease is the name of the heartbeat Lease this shard renews.
func (s Shard) HeartbeatLease() string { return leaseName + s.suffix() }
