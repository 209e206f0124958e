package keeper

import (
	"io/fs"
	"syscall"
	"time"
)

type statInfo struct {
	ctime      time.Time
	dev, inode uint32
	uid, gid   uint32
}

func sysStat(fi fs.FileInfo) statInfo {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statInfo{}
	}
	return statInfo{
		ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		dev:   uint32(st.Dev),
		inode: uint32(st.Ino),
		uid:   st.Uid,
		gid:   st.Gid,
	}
}
