//! The virtual filesystem: inodes, dentries (names with parents, for paths),
//! open file descriptions, fd tables and path walk with symlinks and mounts.

pub mod fd_table;
pub mod file;
pub mod lock;
pub mod path;

pub use fd_table::FdTable;
pub use file::{File, FileOps};
pub use path::{Dentry, FsContext, Vfs};

use crate::errno::{Errno, KResult};
use std::any::Any;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

impl Timespec {
    pub fn now() -> Timespec {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        Timespec {
            sec: ts.tv_sec,
            nsec: ts.tv_nsec,
        }
    }
}

/// File attributes as stat(2) reports them.
#[derive(Clone, Debug, Default)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl Stat {
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }

    /// The x86-64 `struct stat` layout (144 bytes).
    pub fn to_linux(&self) -> [u8; 144] {
        let mut b = [0u8; 144];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(0, &self.dev.to_le_bytes());
        put(8, &self.ino.to_le_bytes());
        put(16, &self.nlink.to_le_bytes());
        put(24, &self.mode.to_le_bytes());
        put(28, &self.uid.to_le_bytes());
        put(32, &self.gid.to_le_bytes());
        put(40, &self.rdev.to_le_bytes());
        put(48, &self.size.to_le_bytes());
        put(56, &self.blksize.to_le_bytes());
        put(64, &self.blocks.to_le_bytes());
        put(72, &self.atime.sec.to_le_bytes());
        put(80, &self.atime.nsec.to_le_bytes());
        put(88, &self.mtime.sec.to_le_bytes());
        put(96, &self.mtime.nsec.to_le_bytes());
        put(104, &self.ctime.sec.to_le_bytes());
        put(112, &self.ctime.nsec.to_le_bytes());
        b
    }

    /// `struct statx` (256 bytes) with the basic fields.
    pub fn to_statx(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(0, &0x7ffu32.to_le_bytes()); // STATX_BASIC_STATS
        put(4, &(self.blksize as u32).to_le_bytes());
        put(16, &(self.nlink as u32).to_le_bytes());
        put(20, &self.uid.to_le_bytes());
        put(24, &self.gid.to_le_bytes());
        put(28, &(self.mode as u16).to_le_bytes());
        put(32, &self.ino.to_le_bytes());
        put(40, &self.size.to_le_bytes());
        put(48, &self.blocks.to_le_bytes());
        let ts = |t: Timespec| {
            let mut x = [0u8; 16];
            x[..8].copy_from_slice(&t.sec.to_le_bytes());
            x[8..12].copy_from_slice(&(t.nsec as u32).to_le_bytes());
            x
        };
        put(64, &ts(self.atime));
        put(80, &ts(self.ctime)); // btime: we keep none, report ctime
        put(96, &ts(self.ctime));
        put(112, &ts(self.mtime));
        put(128, &(major(self.rdev)).to_le_bytes());
        put(132, &(minor(self.rdev)).to_le_bytes());
        put(136, &(major(self.dev)).to_le_bytes());
        put(140, &(minor(self.dev)).to_le_bytes());
        b
    }
}

pub fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}
pub fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (major as u64, minor as u64);
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

/// Filesystem statistics as statfs(2) reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statfs {
    pub fs_type: u64,
    pub bsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: [u32; 2],
    pub namelen: u64,
    pub frsize: u64,
    /// ST_* mount flags (ST_VALID, ST_RDONLY, ST_NOSUID, ...).
    pub flags: u64,
}

/// TMPFS_MAGIC: what in-memory filesystems report by default.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// Set in every statfs f_flags since Linux 2.6.36: the flags are meaningful
/// (glibc's statvfs relies on it rather than parsing /proc/mounts).
pub const ST_VALID: u64 = 0x20;

impl Statfs {
    /// What a filesystem that keeps no accounting reports: an in-memory
    /// filesystem with plenty of room.
    pub fn synthetic(fs_id: usize) -> Statfs {
        Statfs {
            fs_type: TMPFS_MAGIC,
            bsize: 4096,
            blocks: 1 << 20,
            bfree: 1 << 19,
            bavail: 1 << 19,
            files: 1 << 20,
            ffree: 1 << 19,
            fsid: [fs_id as u32, (fs_id >> 32) as u32],
            namelen: 255,
            frsize: 4096,
            flags: ST_VALID,
        }
    }

    /// The x86-64 `struct statfs` layout (120 bytes): f_type, f_bsize,
    /// f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_fsid[2] (two i32),
    /// f_namelen, f_frsize, f_flags, f_spare[4].
    pub fn to_linux(&self) -> [u8; 120] {
        let mut b = [0u8; 120];
        let fsid = (self.fsid[0] as u64) | ((self.fsid[1] as u64) << 32);
        let vals = [
            self.fs_type,
            self.bsize,
            self.blocks,
            self.bfree,
            self.bavail,
            self.files,
            self.ffree,
            fsid,
            self.namelen,
            self.frsize,
            self.flags,
        ];
        for (i, v) in vals.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: u64,
    pub d_type: u8,
    pub name: Vec<u8>,
}

pub fn dtype_of_mode(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFBLK => libc::DT_BLK,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        _ => libc::DT_UNKNOWN,
    }
}

/// A filesystem object. Directory operations default to the errors a
/// read-only or non-directory object gives.
pub trait Inode: Send + Sync + Any {
    fn stat(&self) -> KResult<Stat>;
    fn lookup(&self, _name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }
    fn readlink(&self) -> KResult<Vec<u8>> {
        Err(Errno::EINVAL)
    }
    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>>;
    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        Err(Errno::ENOTDIR)
    }
    /// A host Unix socket connected to this socket node (a node of the
    /// image that is a host socket, reached through the gofer when the
    /// sandbox allows host sockets). ECONNREFUSED where there is none.
    fn connect_host(&self, _sock_type: i32) -> KResult<std::os::fd::OwnedFd> {
        Err(Errno::ECONNREFUSED)
    }
    /// O_TMPFILE: a new regular file with no name in this directory.
    /// `linkable` (no O_EXCL) lets linkat give it a name later.
    /// Filesystems without it give EOPNOTSUPP, as Linux does.
    fn tmpfile(
        &self,
        _mode: u32,
        _uid: u32,
        _gid: u32,
        _linkable: bool,
    ) -> KResult<Arc<dyn Inode>> {
        Err(Errno::EOPNOTSUPP)
    }
    fn create(&self, _name: &[u8], _mode: u32, _uid: u32, _gid: u32) -> KResult<Arc<dyn Inode>> {
        Err(self.dir_write_error())
    }
    fn mkdir(&self, _name: &[u8], _mode: u32, _uid: u32, _gid: u32) -> KResult<()> {
        Err(self.dir_write_error())
    }
    /// mknod(2): FIFOs (and regular files) where the filesystem can.
    fn mknod(&self, _name: &[u8], _mode: u32, _rdev: u64, _uid: u32, _gid: u32) -> KResult<()> {
        Err(self.dir_write_error())
    }
    fn symlink(&self, _name: &[u8], _target: &[u8], _uid: u32, _gid: u32) -> KResult<()> {
        Err(self.dir_write_error())
    }
    fn unlink(&self, _name: &[u8]) -> KResult<()> {
        Err(self.dir_write_error())
    }
    fn rmdir(&self, _name: &[u8]) -> KResult<()> {
        Err(self.dir_write_error())
    }
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(self.dir_write_error())
    }
    /// Moves `name` to `new_dir`/`new_name` (same filesystem only).
    fn rename(&self, _name: &[u8], _new_dir: &Arc<dyn Inode>, _new_name: &[u8]) -> KResult<()> {
        Err(self.dir_write_error())
    }
    /// renameat2(RENAME_EXCHANGE): atomically swaps `name` here with
    /// `new_name` in `new_dir` (both exist). Filesystems without it give
    /// EINVAL, as Linux does.
    fn exchange(&self, _name: &[u8], _new_dir: &Arc<dyn Inode>, _new_name: &[u8]) -> KResult<()> {
        Err(Errno::EINVAL)
    }
    fn set_mode(&self, _mode: u32) -> KResult<()> {
        Err(Errno::EROFS)
    }
    fn set_owner(&self, _uid: Option<u32>, _gid: Option<u32>) -> KResult<()> {
        Err(Errno::EROFS)
    }
    fn set_times(&self, _atime: Option<Timespec>, _mtime: Option<Timespec>) -> KResult<()> {
        Err(Errno::EROFS)
    }
    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(Errno::EROFS)
    }
    /// The value of extended attribute `name`; ENODATA when unset.
    fn getxattr(&self, _name: &[u8]) -> KResult<Vec<u8>> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Sets extended attribute `name`; `flags` is 0, XATTR_CREATE (1) or
    /// XATTR_REPLACE (2).
    fn setxattr(&self, _name: &[u8], _value: &[u8], _flags: i32) -> KResult<()> {
        Err(Errno::EOPNOTSUPP)
    }
    /// The names of the object's extended attributes.
    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Removes extended attribute `name`; ENODATA when unset.
    fn removexattr(&self, _name: &[u8]) -> KResult<()> {
        Err(Errno::EOPNOTSUPP)
    }
    /// statfs(2) of the filesystem holding this object. The default suits
    /// in-memory filesystems without accounting; filesystems that know
    /// better (the gofer's host numbers, tmpfs's size limit) override it.
    fn statfs(&self) -> KResult<Statfs> {
        Ok(Statfs::synthetic(self.fs_id()))
    }
    /// Identifies the filesystem, so rename/link across filesystems give EXDEV.
    fn fs_id(&self) -> usize;
    fn as_any(&self) -> &dyn Any;
    fn dir_write_error(&self) -> Errno {
        match self.stat() {
            Ok(s) if !s.is_dir() => Errno::ENOTDIR,
            _ => Errno::EROFS,
        }
    }
}
