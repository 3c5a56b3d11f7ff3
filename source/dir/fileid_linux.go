package dir

import (
	"os"
	"syscall"
)

// fileID is the inode and change time of a file: a file replaced by a
// rename has a new inode, and any write or attribute change moves ctime,
// which (unlike mtime) tools cannot set back.
func fileID(fi os.FileInfo) (ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	sec, nsec := st.Ctim.Unix()
	return st.Ino, sec*1e9 + nsec
}
