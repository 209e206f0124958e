//go:build !linux

package keeper

import (
	"io/fs"
	"time"
)

type statInfo struct {
	ctime      time.Time
	dev, inode uint32
	uid, gid   uint32
}

func sysStat(fi fs.FileInfo) statInfo { return statInfo{ctime: fi.ModTime()} }
