package wasip1

import (
	"errors"
	"io"
	"io/fs"
	"syscall"
)

// WASI preview1 error numbers.
const (
	errnoSuccess     uint16 = 0
	errno2big        uint16 = 1
	errnoAcces       uint16 = 2
	errnoAgain       uint16 = 6
	errnoBadf        uint16 = 8
	errnoBusy        uint16 = 10
	errnoExist       uint16 = 20
	errnoFault       uint16 = 21
	errnoFbig        uint16 = 22
	errnoIlseq       uint16 = 25
	errnoIntr        uint16 = 27
	errnoInval       uint16 = 28
	errnoIO          uint16 = 29
	errnoIsdir       uint16 = 31
	errnoLoop        uint16 = 32
	errnoMfile       uint16 = 33
	errnoMlink       uint16 = 34
	errnoNametoolong uint16 = 37
	errnoNoent       uint16 = 44
	errnoNomem       uint16 = 48
	errnoNospc       uint16 = 51
	errnoNosys       uint16 = 52
	errnoNotdir      uint16 = 54
	errnoNotempty    uint16 = 55
	errnoNotsock     uint16 = 57
	errnoNotsup      uint16 = 58
	errnoNotty       uint16 = 59
	errnoNxio        uint16 = 60
	errnoOverflow    uint16 = 61
	errnoPerm        uint16 = 63
	errnoPipe        uint16 = 64
	errnoRofs        uint16 = 69
	errnoSpipe       uint16 = 70
	errnoTimedout    uint16 = 73
	errnoTxtbsy      uint16 = 74
	errnoXdev        uint16 = 75
	errnoNotcapable  uint16 = 76
)

var fromSyscall = map[syscall.Errno]uint16{
	syscall.E2BIG: errno2big, syscall.EACCES: errnoAcces, syscall.EAGAIN: errnoAgain,
	syscall.EBADF: errnoBadf, syscall.EBUSY: errnoBusy, syscall.EEXIST: errnoExist,
	syscall.EFAULT: errnoFault, syscall.EFBIG: errnoFbig, syscall.EILSEQ: errnoIlseq,
	syscall.EINTR: errnoIntr, syscall.EINVAL: errnoInval, syscall.EIO: errnoIO,
	syscall.EISDIR: errnoIsdir, syscall.ELOOP: errnoLoop, syscall.EMFILE: errnoMfile,
	syscall.EMLINK: errnoMlink, syscall.ENAMETOOLONG: errnoNametoolong, syscall.ENOENT: errnoNoent,
	syscall.ENOMEM: errnoNomem, syscall.ENOSPC: errnoNospc, syscall.ENOSYS: errnoNosys,
	syscall.ENOTDIR: errnoNotdir, syscall.ENOTEMPTY: errnoNotempty, syscall.ENOTSOCK: errnoNotsock,
	syscall.ENOTSUP: errnoNotsup, syscall.ENOTTY: errnoNotty, syscall.ENXIO: errnoNxio,
	syscall.EOVERFLOW: errnoOverflow, syscall.EPERM: errnoPerm, syscall.EPIPE: errnoPipe,
	syscall.EROFS: errnoRofs, syscall.ESPIPE: errnoSpipe, syscall.ETIMEDOUT: errnoTimedout,
	syscall.ETXTBSY: errnoTxtbsy, syscall.EXDEV: errnoXdev,
}

// errnoOf turns a DirFS error into a WASI error number: the errno it
// wraps, else the io/fs sentinel it matches, else EIO.
func errnoOf(err error) uint16 {
	if err == nil || err == io.EOF {
		return errnoSuccess
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if n, ok := fromSyscall[e]; ok {
			return n
		}
		return errnoIO
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errnoNoent
	case errors.Is(err, fs.ErrPermission):
		return errnoPerm
	case errors.Is(err, fs.ErrExist):
		return errnoExist
	case errors.Is(err, fs.ErrInvalid):
		return errnoInval
	case errors.Is(err, fs.ErrClosed):
		return errnoBadf
	}
	return errnoIO
}

// File types.
const (
	filetypeUnknown      uint8 = 0
	filetypeBlockDevice  uint8 = 1
	filetypeCharDevice   uint8 = 2
	filetypeDirectory    uint8 = 3
	filetypeRegular      uint8 = 4
	filetypeSocketStream uint8 = 6
	filetypeSymlink      uint8 = 7
)

// Rights.
const (
	rightFdDatasync uint64 = 1 << iota
	rightFdRead
	rightFdSeek
	rightFdFdstatSetFlags
	rightFdSync
	rightFdTell
	rightFdWrite
	rightFdAdvise
	rightFdAllocate
	rightPathCreateDirectory
	rightPathCreateFile
	rightPathLinkSource
	rightPathLinkTarget
	rightPathOpen
	rightFdReaddir
	rightPathReadlink
	rightPathRenameSource
	rightPathRenameTarget
	rightPathFilestatGet
	rightPathFilestatSetSize
	rightPathFilestatSetTimes
	rightFdFilestatGet
	rightFdFilestatSetSize
	rightFdFilestatSetTimes
	rightPathSymlink
	rightPathRemoveDirectory
	rightPathUnlinkFile
	rightPollFdReadwrite
	rightSockShutdown
	rightSockAccept

	rightsAll = rightSockAccept<<1 - 1

	rightsFile = rightFdDatasync | rightFdRead | rightFdSeek | rightFdFdstatSetFlags | rightFdSync |
		rightFdTell | rightFdWrite | rightFdAdvise | rightFdAllocate | rightFdFilestatGet |
		rightFdFilestatSetSize | rightFdFilestatSetTimes | rightPollFdReadwrite
	// rightsDir are a directory's, as wasmtime gives them: no right
	// that would make path_open open it for writing.
	rightsDir = rightPathCreateDirectory | rightPathCreateFile | rightPathLinkSource | rightPathLinkTarget |
		rightPathOpen | rightFdReaddir | rightPathReadlink | rightPathRenameSource | rightPathRenameTarget |
		rightPathFilestatGet | rightPathFilestatSetTimes | rightFdFilestatGet | rightFdFilestatSetTimes |
		rightPathSymlink | rightPathRemoveDirectory | rightPathUnlinkFile
	rightsStdin  = rightFdRead | rightFdFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite
	rightsStdout = rightFdWrite | rightFdFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite
)

// Flags.
const (
	fdflagAppend   uint16 = 1
	fdflagDsync    uint16 = 2
	fdflagNonblock uint16 = 4
	fdflagRsync    uint16 = 8
	fdflagSync     uint16 = 16

	oflagCreat     uint16 = 1
	oflagDirectory uint16 = 2
	oflagExcl      uint16 = 4
	oflagTrunc     uint16 = 8

	lookupSymlinkFollow uint32 = 1

	fstflagAtim    uint16 = 1
	fstflagAtimNow uint16 = 2
	fstflagMtim    uint16 = 4
	fstflagMtimNow uint16 = 8

	whenceSet uint8 = 0
	whenceCur uint8 = 1
	whenceEnd uint8 = 2
)

// Structure sizes.
const (
	filestatSize     = 64
	fdstatSize       = 24
	direntHeaderSize = 24
	subscriptionSize = 48
	eventSize        = 32
)
