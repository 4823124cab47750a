package abi

// Host functions of the filesystem capability (docs/abi.md §9). Each
// returns an i32 Result. Paths are absolute guest paths in UTF-8, such as
// "/data/in.txt", passed as a pointer and a length.
const (
	// FuncFSRead(path_ptr, path_len, offset i64, buf_ptr, buf_len, n_ptr)
	// -> result reads up to buf_len bytes of the file from offset and
	// writes the count (u32) at n_ptr; fewer than buf_len means the end of
	// the file was reached.
	FuncFSRead = "fs_read"
	// FuncFSWrite(path_ptr, path_len, data_ptr, data_len, flags) -> result
	// replaces the file with the data, atomically. flags is 0 or
	// FSWriteExclusive.
	FuncFSWrite = "fs_write"
	// FuncFSAppend(path_ptr, path_len, data_ptr, data_len) -> result
	// appends the data to the file, creating it if needed.
	FuncFSAppend = "fs_append"
	// FuncFSStat(path_ptr, path_len, stat_ptr) -> result writes an
	// FSStatSize-byte description of the file at stat_ptr.
	FuncFSStat = "fs_stat"
	// FuncFSList(path_ptr, path_len, buf_ptr, buf_len, n_ptr) -> result
	// writes the directory's entries at buf_ptr (see FSKind) and their
	// length at n_ptr; when buf_len is too small it writes only the length,
	// with ResultLimit (a length of 0: the directory is too large).
	FuncFSList = "fs_list"
	// FuncFSRemove(path_ptr, path_len) -> result removes a file or an
	// empty directory.
	FuncFSRemove = "fs_remove"
	// FuncFSMkdir(path_ptr, path_len) -> result creates a directory.
	FuncFSMkdir = "fs_mkdir"
	// FuncFSRename(from_ptr, from_len, to_ptr, to_len) -> result renames
	// within one granted directory.
	FuncFSRename = "fs_rename"
	// FuncFSLastError(buf_ptr, buf_len, n_ptr) -> result writes the detail
	// of the step's last failed fs_* call, an Error as JSON.
	FuncFSLastError = "fs_last_error"
)

// FSWriteExclusive, in fs_write's flags, makes the write fail with
// ResultExists when the file exists.
const FSWriteExclusive uint32 = 1

// FSMaxPath is the longest path, in bytes, the fs_* functions accept.
const FSMaxPath = 4096

// FSStatSize is the size of what fs_stat writes:
//
//	offset 0  u64  size in bytes
//	offset 8  i64  modification time, nanoseconds since the Unix epoch
//	offset 16 u32  kind (FSKind)
//	offset 20 u32  permission bits (0o777 at most)
const FSStatSize = 24

// FSKind is the kind of a file, in fs_stat's description and fs_list's
// entries.
type FSKind uint8

// File kinds. fs_stat follows symbolic links, so it never reports
// FSKindSymlink; fs_list does not.
const (
	FSKindFile    FSKind = 0
	FSKindDir     FSKind = 1
	FSKindSymlink FSKind = 2
	FSKindOther   FSKind = 3
)
