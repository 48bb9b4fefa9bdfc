//! The terminal line discipline: Linux's n_tty for a pseudo-terminal pair.
//!
//! [`Ldisc`] holds everything between the two ends of a pty and is pure
//! data (no tasks, no blocking), so its behaviour is unit-tested directly:
//!
//! * input: bytes written to the master wait in a "flip buffer"
//!   (`pending`, 64 KiB as Linux's) and are processed into the slave's
//!   4 KiB read buffer as room allows: ISTRIP/IUCLC, IXON start/stop,
//!   ISIG characters (reported to the caller, which signals the foreground
//!   process group), IGNCR/ICRNL/INLCR, canonical line editing (ERASE,
//!   WERASE, KILL, LNEXT, REPRINT, EOF, EOL, EOL2) and echo;
//! * output: bytes the slave writes, and echoes, go through OPOST
//!   processing (ONLCR, OCRNL, ONOCR, ONLRET, OLCUC, XTABS) into the
//!   queue the master reads, tracking the output column as Linux does for
//!   tab erasure.
//!
//! The pty itself (opening, blocking, job control) is in `devpts.rs`.

use std::collections::VecDeque;

// c_cc indices (x86-64).
pub const VINTR: usize = 0;
pub const VQUIT: usize = 1;
pub const VERASE: usize = 2;
pub const VKILL: usize = 3;
pub const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
pub const VSTART: usize = 8;
pub const VSTOP: usize = 9;
pub const VSUSP: usize = 10;
pub const VEOL: usize = 11;
pub const VREPRINT: usize = 12;
pub const VWERASE: usize = 14;
pub const VLNEXT: usize = 15;
pub const VEOL2: usize = 16;
pub const NCCS: usize = 19;

// c_iflag
pub const ISTRIP: u32 = 0o40;
pub const INLCR: u32 = 0o100;
pub const IGNCR: u32 = 0o200;
pub const ICRNL: u32 = 0o400;
pub const IUCLC: u32 = 0o1000;
pub const IXON: u32 = 0o2000;
pub const IXANY: u32 = 0o4000;
pub const IUTF8: u32 = 0o40000;

// c_oflag
pub const OPOST: u32 = 0o1;
pub const OLCUC: u32 = 0o2;
pub const ONLCR: u32 = 0o4;
pub const OCRNL: u32 = 0o10;
pub const ONOCR: u32 = 0o20;
pub const ONLRET: u32 = 0o40;
pub const TABDLY: u32 = 0o14000;
pub const XTABS: u32 = 0o14000;

// c_cflag
pub const CBAUD: u32 = 0o10017;
pub const BOTHER: u32 = 0o10000;
pub const B38400: u32 = 0o17;
pub const CSIZE: u32 = 0o60;
pub const CS8: u32 = 0o60;
pub const CREAD: u32 = 0o200;
pub const PARENB: u32 = 0o400;
pub const CIBAUD_SHIFT: u32 = 16;

// c_lflag
pub const ISIG: u32 = 0o1;
pub const ICANON: u32 = 0o2;
pub const ECHO: u32 = 0o10;
pub const ECHOE: u32 = 0o20;
pub const ECHOK: u32 = 0o40;
pub const ECHONL: u32 = 0o100;
pub const NOFLSH: u32 = 0o200;
pub const TOSTOP: u32 = 0o400;
pub const ECHOCTL: u32 = 0o1000;
pub const ECHOPRT: u32 = 0o2000;
pub const ECHOKE: u32 = 0o4000;
pub const IEXTEN: u32 = 0o100000;

/// Linux's N_TTY_BUF_SIZE: the slave's read buffer.
pub const N_TTY_BUF_SIZE: usize = 4096;
/// How much written to the master may wait unprocessed (the slave port's
/// flip-buffer limit, TTYB_DEFAULT_MEM_LIMIT).
pub const FLIP_MAX: usize = 65536;
/// How much the slave may write before the master reads: the master's
/// flip buffers plus its own read buffer.
pub const OUTQ_MAX: usize = FLIP_MAX + N_TTY_BUF_SIZE;
/// Echoes are never blocked; past this much unread output they are dropped.
const ECHO_MAX: usize = OUTQ_MAX + N_TTY_BUF_SIZE;

/// Size of the kernel `struct termios` (TCGETS) and `struct termios2`.
pub const TERMIOS_SIZE: usize = 36;
pub const TERMIOS2_SIZE: usize = 44;
/// Size of the old `struct termio` (TCGETA).
pub const TERMIO_SIZE: usize = 18;

/// Speeds for the CBAUD values (CBAUDEX ones at 16..).
const BAUD_TABLE: [u32; 32] = [
    0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 0, 57600,
    115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000,
    3000000, 3500000, 4000000,
];

fn baud_of(cbaud: u32) -> Option<u32> {
    let i = if cbaud & BOTHER != 0 {
        if cbaud == BOTHER {
            return None;
        }
        16 + (cbaud & 0o17) as usize
    } else {
        (cbaud & 0o17) as usize
    };
    BAUD_TABLE.get(i).copied()
}

/// The kernel's `struct ktermios`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; NCCS],
    pub ispeed: u32,
    pub ospeed: u32,
}

impl Termios {
    /// What a fresh pty slave has (tty_std_termios with the pty driver's
    /// c_cflag): `stty -a` of a new pty on Linux.
    pub fn pty_default() -> Termios {
        let mut cc = [0u8; NCCS];
        cc[..17].copy_from_slice(
            b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00",
        );
        Termios {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: B38400 | CS8 | CREAD,
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc,
            ispeed: 38400,
            ospeed: 38400,
        }
    }

    /// The 36-byte `struct termios` TCGETS returns.
    pub fn to_bytes(&self) -> [u8; TERMIOS_SIZE] {
        let mut b = [0u8; TERMIOS_SIZE];
        b[0..4].copy_from_slice(&self.iflag.to_le_bytes());
        b[4..8].copy_from_slice(&self.oflag.to_le_bytes());
        b[8..12].copy_from_slice(&self.cflag.to_le_bytes());
        b[12..16].copy_from_slice(&self.lflag.to_le_bytes());
        b[16] = self.line;
        b[17..36].copy_from_slice(&self.cc);
        b
    }

    /// The 44-byte `struct termios2` (TCGETS2).
    pub fn to_bytes2(&self) -> [u8; TERMIOS2_SIZE] {
        let mut b = [0u8; TERMIOS2_SIZE];
        b[..TERMIOS_SIZE].copy_from_slice(&self.to_bytes());
        b[36..40].copy_from_slice(&self.ispeed.to_le_bytes());
        b[40..44].copy_from_slice(&self.ospeed.to_le_bytes());
        b
    }

    /// The old 18-byte `struct termio` (TCGETA): 16-bit flags, 8 cc.
    pub fn to_termio(&self) -> [u8; TERMIO_SIZE] {
        let mut b = [0u8; TERMIO_SIZE];
        b[0..2].copy_from_slice(&(self.iflag as u16).to_le_bytes());
        b[2..4].copy_from_slice(&(self.oflag as u16).to_le_bytes());
        b[4..6].copy_from_slice(&(self.cflag as u16).to_le_bytes());
        b[6..8].copy_from_slice(&(self.lflag as u16).to_le_bytes());
        b[8] = self.line;
        b[9..17].copy_from_slice(&self.cc[..8]);
        b
    }

    /// This termios with the first 36 bytes replaced by `b` (TCSETS keeps
    /// the speeds, then recomputes them from c_cflag).
    pub fn with_bytes(&self, b: &[u8]) -> Termios {
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut t = *self;
        t.iflag = u(0);
        t.oflag = u(4);
        t.cflag = u(8);
        t.lflag = u(12);
        t.line = b[16];
        t.cc.copy_from_slice(&b[17..36]);
        if b.len() >= TERMIOS2_SIZE {
            t.ispeed = u(36);
            t.ospeed = u(40);
        }
        t.update_speeds();
        t
    }

    /// TCSETA: the low 16 bits of each flag word and the first 8 cc.
    pub fn with_termio(&self, b: &[u8]) -> Termios {
        let h = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as u32;
        let mut t = *self;
        t.iflag = (t.iflag & 0xffff_0000) | h(0);
        t.oflag = (t.oflag & 0xffff_0000) | h(2);
        t.cflag = (t.cflag & 0xffff_0000) | h(4);
        t.lflag = (t.lflag & 0xffff_0000) | h(6);
        t.line = b[8];
        t.cc[..8].copy_from_slice(&b[9..17]);
        t.update_speeds();
        t
    }

    /// c_ispeed/c_ospeed from the CBAUD/CIBAUD bits (BOTHER keeps them).
    fn update_speeds(&mut self) {
        if let Some(o) = baud_of(self.cflag & CBAUD) {
            self.ospeed = o;
        }
        let ib = (self.cflag >> CIBAUD_SHIFT) & CBAUD;
        if ib == 0 {
            // B0 input: same as output.
            self.ispeed = self.ospeed;
        } else if let Some(i) = baud_of(ib) {
            self.ispeed = i;
        }
    }

    pub fn l(&self, f: u32) -> bool {
        self.lflag & f != 0
    }
    pub fn i(&self, f: u32) -> bool {
        self.iflag & f != 0
    }
    pub fn o(&self, f: u32) -> bool {
        self.oflag & f != 0
    }
}

fn iscntrl(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// Why input processing asked for a signal: one of the ISIG characters.
pub type Signals = Vec<i32>;

/// The state of one pty pair's line discipline.
pub struct Ldisc {
    pub termios: Termios,
    /// `struct winsize`, as set by TIOCSWINSZ.
    pub winsize: [u8; 8],
    /// Written by the master, not yet processed (the flip buffer).
    pending: VecDeque<u8>,
    /// The slave's read buffer: (byte, ends a line). An EOF character is
    /// stored as (0, true) and never delivered, as Linux's __DISABLED_CHAR.
    inq: VecDeque<(u8, bool)>,
    /// How many entries of `inq` form complete lines (canonical reads).
    canon_head: usize,
    /// The previous character was LNEXT: take the next one literally.
    lnext: bool,
    /// ECHOPRT: inside a "\...erased.../" sequence.
    erasing: bool,
    /// What the master reads: slave output after OPOST, and echoes.
    pub outq: VecDeque<u8>,
    column: usize,
    canon_column: usize,
    /// Output stopped: by IXON's STOP character or TCOOFF.
    pub stopped: bool,
    /// Stopped by TCOOFF (IXANY does not restart it).
    pub tco_stopped: bool,
}

impl Default for Ldisc {
    fn default() -> Ldisc {
        Ldisc::new()
    }
}

impl Ldisc {
    pub fn new() -> Ldisc {
        Ldisc {
            termios: Termios::pty_default(),
            winsize: [0; 8],
            pending: VecDeque::new(),
            inq: VecDeque::new(),
            canon_head: 0,
            lnext: false,
            erasing: false,
            outq: VecDeque::new(),
            column: 0,
            canon_column: 0,
            stopped: false,
            tco_stopped: false,
        }
    }

    pub fn canon(&self) -> bool {
        self.termios.l(ICANON)
    }

    // ----- the slave's side of the input ---------------------------------

    /// Whether a slave read would find data. With `poll`, a non-canonical
    /// read waiting for VMIN bytes (VTIME 0) needs that many, as n_tty's
    /// input_available_p.
    pub fn slave_readable(&self, poll: bool) -> bool {
        if self.canon() {
            return self.canon_head > 0;
        }
        let (vmin, vtime) = (self.termios.cc[VMIN], self.termios.cc[VTIME]);
        let amt = if poll && vtime == 0 && vmin > 0 {
            vmin as usize
        } else {
            1
        };
        self.inq.len() >= amt
    }

    /// FIONREAD on the slave: bytes of complete lines in canonical mode
    /// (EOF markers not counted), everything otherwise.
    pub fn slave_inq(&self) -> usize {
        if self.canon() {
            self.inq
                .iter()
                .take(self.canon_head)
                .filter(|&&(c, eol)| !(eol && c == 0))
                .count()
        } else {
            self.inq.len()
        }
    }

    /// A canonical read: at most one line, the terminator included unless
    /// it is an EOF marker. Call only when `canon_head > 0`.
    pub fn read_canon(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && self.canon_head > 0 {
            let (c, eol) = self.inq.pop_front().unwrap_or((0, true));
            self.canon_head -= 1;
            if eol {
                if c != 0 {
                    buf[n] = c;
                    n += 1;
                }
                break;
            }
            buf[n] = c;
            n += 1;
        }
        n
    }

    /// A non-canonical read of what is there.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.inq.len());
        for (d, (c, _)) in buf.iter_mut().zip(self.inq.drain(..n)) {
            *d = c;
        }
        self.canon_head = self.canon_head.saturating_sub(n);
        n
    }

    /// Discards the slave's unread input (TCIFLUSH, TCSETSF, signals).
    pub fn flush_input(&mut self) {
        self.inq.clear();
        self.canon_head = 0;
        self.lnext = false;
        self.erasing = false;
    }

    /// Discards what the master has not read (the master's TCIFLUSH).
    pub fn flush_output(&mut self) {
        self.outq.clear();
    }

    /// The slave's TCOFLUSH: what already reached the master's own read
    /// buffer stays, the flip buffers behind it go.
    pub fn flush_output_flip(&mut self) {
        self.outq.truncate(N_TTY_BUF_SIZE - 1);
    }

    /// The master's TCOFLUSH: written to the master, not yet processed.
    pub fn flush_pending(&mut self) {
        self.pending.clear();
    }

    // ----- the master's side of the input ---------------------------------

    /// Room for master writes.
    pub fn pending_room(&self) -> usize {
        FLIP_MAX.saturating_sub(self.pending.len())
    }

    /// A master write: queues what fits and processes as much as the read
    /// buffer takes. Returns the bytes accepted; signals to send are added
    /// to `sigs`.
    pub fn master_write(&mut self, buf: &[u8], sigs: &mut Signals) -> usize {
        let n = buf.len().min(self.pending_room());
        self.pending.extend(&buf[..n]);
        self.process_input(sigs);
        n
    }

    /// Moves pending input into the read buffer while there is room (call
    /// after a slave read or a termios change too).
    pub fn process_input(&mut self, sigs: &mut Signals) {
        while let Some(&c) = self.pending.front() {
            // A canonical line that fills the buffer still takes editing
            // and terminators (excess characters are dropped in `put`).
            let overflow = self.canon() && self.canon_head == 0;
            if self.inq.len() >= N_TTY_BUF_SIZE - 1 && !overflow {
                break;
            }
            self.pending.pop_front();
            self.receive_char(c, sigs);
        }
    }

    fn put(&mut self, c: u8, eol: bool) {
        if self.inq.len() >= N_TTY_BUF_SIZE - 1 && !(eol && self.inq.len() < N_TTY_BUF_SIZE) {
            return;
        }
        self.inq.push_back((c, eol));
        if eol {
            self.canon_head = self.inq.len();
        }
    }

    /// The current (uncommitted) canonical line.
    fn line_len(&self) -> usize {
        self.inq.len() - self.canon_head
    }

    fn receive_char(&mut self, mut c: u8, sigs: &mut Signals) {
        let t = self.termios;
        if t.i(ISTRIP) {
            c &= 0x7f;
        }
        if t.i(IUCLC) && t.l(IEXTEN) {
            c = c.to_ascii_lowercase();
        }
        if self.lnext {
            self.lnext = false;
            self.receive_plain(c);
            return;
        }
        // A character equal to a c_cc entry (0 disables the entry).
        let is = |i: usize, c: u8| t.cc[i] != 0 && t.cc[i] == c;
        if t.i(IXON) {
            if is(VSTART, c) {
                self.stopped = false;
                self.tco_stopped = false;
                return;
            }
            if is(VSTOP, c) {
                self.stopped = true;
                return;
            }
        }
        if t.l(ISIG) {
            let sig = if is(VINTR, c) {
                Some(libc::SIGINT)
            } else if is(VQUIT, c) {
                Some(libc::SIGQUIT)
            } else if is(VSUSP, c) {
                Some(libc::SIGTSTP)
            } else {
                None
            };
            if let Some(sig) = sig {
                sigs.push(sig);
                if !t.l(NOFLSH) {
                    self.flush_input();
                    self.flush_output_flip();
                }
                if t.i(IXON) {
                    self.stopped = false;
                    self.tco_stopped = false;
                }
                if t.l(ECHO) {
                    self.echo_char(c);
                }
                return;
            }
        }
        if self.stopped && !self.tco_stopped && t.i(IXON) && t.i(IXANY) {
            self.stopped = false;
        }
        let mut from_cr = false;
        if c == b'\r' {
            if t.i(IGNCR) {
                return;
            }
            if t.i(ICRNL) {
                c = b'\n';
                from_cr = true;
            }
        } else if c == b'\n' && t.i(INLCR) {
            c = b'\r';
        }
        if self.canon() {
            let iext = t.l(IEXTEN);
            if is(VERASE, c) || is(VKILL, c) || (iext && is(VWERASE, c)) {
                self.eraser(c);
                return;
            }
            if iext && is(VLNEXT, c) {
                self.lnext = true;
                if t.l(ECHO) {
                    self.finish_erasing();
                    if t.l(ECHOCTL) {
                        self.echo_raw(b'^');
                        self.echo_raw(8);
                    }
                }
                return;
            }
            if iext && t.l(ECHO) && is(VREPRINT, c) {
                self.finish_erasing();
                self.echo_char(c);
                self.echo_raw(b'\n');
                let line: Vec<u8> = self.inq.iter().skip(self.canon_head).map(|x| x.0).collect();
                for ch in line {
                    self.echo_char(ch);
                }
                return;
            }
            if c == b'\n' {
                if t.l(ECHO) || t.l(ECHONL) {
                    self.echo_raw(b'\n');
                }
                self.put(c, true);
                return;
            }
            if is(VEOF, c) {
                self.put(0, true);
                return;
            }
            if is(VEOL, c) || (iext && is(VEOL2, c)) {
                if t.l(ECHO) {
                    if self.line_len() == 0 {
                        self.canon_column = self.column;
                    }
                    self.echo_char(c);
                }
                self.put(c, true);
                return;
            }
        }
        if t.l(ECHO) {
            self.finish_erasing();
            if c == b'\n' && (from_cr || t.i(INLCR) || self.canon()) {
                self.echo_raw(b'\n');
            } else {
                if self.line_len() == 0 {
                    self.canon_column = self.column;
                }
                self.echo_char(c);
            }
        }
        self.put(c, false);
    }

    /// A character taken literally (after LNEXT).
    fn receive_plain(&mut self, c: u8) {
        let t = self.termios;
        if self.stopped && !self.tco_stopped && t.i(IXON) && t.i(IXANY) {
            self.stopped = false;
        }
        if t.l(ECHO) {
            self.finish_erasing();
            if self.line_len() == 0 {
                self.canon_column = self.column;
            }
            self.echo_char(c);
        }
        self.put(c, false);
    }

    fn is_continuation(&self, c: u8) -> bool {
        self.termios.i(IUTF8) && c & 0xc0 == 0x80
    }

    fn finish_erasing(&mut self) {
        if self.erasing {
            self.echo_raw(b'/');
            self.erasing = false;
        }
    }

    /// ERASE, WERASE and KILL in canonical mode, with their echoes.
    fn eraser(&mut self, c: u8) {
        #[derive(PartialEq)]
        enum Kind {
            Erase,
            Werase,
            Kill,
        }
        let t = self.termios;
        if self.line_len() == 0 {
            return;
        }
        let kind = if c == t.cc[VERASE] {
            Kind::Erase
        } else if c == t.cc[VWERASE] {
            Kind::Werase
        } else {
            if !t.l(ECHO) {
                self.inq.truncate(self.canon_head);
                return;
            }
            if !t.l(ECHOK) || !t.l(ECHOKE) || !t.l(ECHOE) {
                self.inq.truncate(self.canon_head);
                self.finish_erasing();
                self.echo_char(t.cc[VKILL]);
                if t.l(ECHOK) {
                    self.echo_raw(b'\n');
                }
                return;
            }
            Kind::Kill
        };
        let mut seen_alnums = 0;
        while self.line_len() > 0 {
            // One possibly multi-byte character.
            let mut head = self.inq.len();
            let mut ch;
            loop {
                head -= 1;
                ch = self.inq[head].0;
                if !(self.is_continuation(ch) && head > self.canon_head) {
                    break;
                }
            }
            if self.is_continuation(ch) {
                break;
            }
            if kind == Kind::Werase {
                if ch.is_ascii_alphanumeric() || ch == b'_' {
                    seen_alnums += 1;
                } else if seen_alnums > 0 {
                    break;
                }
            }
            let erased: Vec<u8> = self.inq.drain(head..).map(|x| x.0).collect();
            if t.l(ECHO) {
                if t.l(ECHOPRT) {
                    if !self.erasing {
                        self.echo_raw(b'\\');
                        self.erasing = true;
                    }
                    self.echo_char(ch);
                    for &b in &erased[1..] {
                        self.echo_raw(b);
                        self.column = self.column.saturating_sub(1);
                    }
                } else if kind == Kind::Erase && !t.l(ECHOE) {
                    self.echo_char(t.cc[VERASE]);
                } else if ch == b'\t' {
                    // Columns used since the line start or the previous tab.
                    let mut num = 0usize;
                    let mut after_tab = false;
                    for &(b, _) in self.inq.iter().skip(self.canon_head).rev() {
                        if b == b'\t' {
                            after_tab = true;
                            break;
                        } else if iscntrl(b) {
                            if t.l(ECHOCTL) {
                                num += 2;
                            }
                        } else if !self.is_continuation(b) {
                            num += 1;
                        }
                    }
                    if !after_tab {
                        num += self.canon_column;
                    }
                    for _ in 0..8 - (num & 7) {
                        self.push_echo(&[8]);
                        self.column = self.column.saturating_sub(1);
                    }
                } else {
                    if iscntrl(ch) && t.l(ECHOCTL) {
                        self.echo_raw(8);
                        self.echo_raw(b' ');
                        self.echo_raw(8);
                    }
                    if !iscntrl(ch) || t.l(ECHOCTL) {
                        self.echo_raw(8);
                        self.echo_raw(b' ');
                        self.echo_raw(8);
                    }
                }
            }
            if kind == Kind::Erase {
                break;
            }
        }
        if self.line_len() == 0 && t.l(ECHO) {
            self.finish_erasing();
        }
    }

    // ----- output -----------------------------------------------------------

    fn push_echo(&mut self, b: &[u8]) {
        if self.outq.len() + b.len() <= ECHO_MAX {
            self.outq.extend(b);
        }
    }

    /// Echoes `c`, as ^X when ECHOCTL and it is a control character.
    fn echo_char(&mut self, c: u8) {
        if self.termios.l(ECHOCTL) && iscntrl(c) && c != b'\t' {
            self.push_echo(&[b'^', c ^ 0o100]);
            self.column += 2;
        } else {
            self.echo_raw(c);
        }
    }

    /// Echoes `c` through output processing.
    fn echo_raw(&mut self, c: u8) {
        let mut out = [0u8; 8];
        let n = self.output_char(c, &mut out);
        self.push_echo(&out[..n]);
    }

    /// Linux's do_output_char: what `c` becomes under the current oflag,
    /// with the column updated. Returns the bytes in `out` (at most 8).
    fn output_char(&mut self, mut c: u8, out: &mut [u8; 8]) -> usize {
        let t = self.termios;
        if !t.o(OPOST) {
            out[0] = c;
            return 1;
        }
        match c {
            b'\n' => {
                if t.o(ONLRET) {
                    self.column = 0;
                }
                if t.o(ONLCR) {
                    self.column = 0;
                    self.canon_column = 0;
                    out[..2].copy_from_slice(b"\r\n");
                    return 2;
                }
                self.canon_column = self.column;
            }
            b'\r' => {
                if t.o(ONOCR) && self.column == 0 {
                    return 0;
                }
                if t.o(OCRNL) {
                    c = b'\n';
                    if t.o(ONLRET) {
                        self.column = 0;
                        self.canon_column = 0;
                    }
                } else {
                    self.column = 0;
                    self.canon_column = 0;
                }
            }
            b'\t' => {
                let spaces = 8 - (self.column & 7);
                self.column += spaces;
                if t.oflag & TABDLY == XTABS {
                    out[..spaces].fill(b' ');
                    return spaces;
                }
            }
            8 => {
                self.column = self.column.saturating_sub(1);
            }
            _ => {
                if !iscntrl(c) {
                    if t.o(OLCUC) {
                        c = c.to_ascii_uppercase();
                    }
                    if !self.is_continuation(c) {
                        self.column += 1;
                    }
                }
            }
        }
        out[0] = c;
        1
    }

    /// Room for slave writes.
    pub fn output_room(&self) -> usize {
        OUTQ_MAX.saturating_sub(self.outq.len())
    }

    /// A slave write: output-processes as much of `buf` as fits. Returns
    /// the bytes of `buf` consumed.
    pub fn slave_write(&mut self, buf: &[u8]) -> usize {
        let mut done = 0;
        let mut out = [0u8; 8];
        for &c in buf {
            // Worst case: a tab expands to 8 spaces.
            if self.output_room() < 8 {
                break;
            }
            let n = self.output_char(c, &mut out);
            self.outq.extend(&out[..n]);
            done += 1;
        }
        done
    }

    /// A master read.
    pub fn master_read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.outq.len());
        for (d, s) in buf.iter_mut().zip(self.outq.drain(..n)) {
            *d = s;
        }
        n
    }

    /// Input typed as if at the terminal (TIOCSTI), processed at once.
    pub fn simulate_input(&mut self, c: u8, sigs: &mut Signals) {
        self.receive_char(c, sigs);
    }

    /// Applies a new termios (TCSETS*): pty_set_termios forces CS8|CREAD
    /// and no parity; switching ICANON re-frames the read buffer as
    /// n_tty_set_termios does.
    pub fn set_termios(&mut self, mut new: Termios, sigs: &mut Signals) {
        new.cflag = (new.cflag & !(CSIZE | PARENB)) | CS8 | CREAD;
        let old = self.termios;
        self.termios = new;
        if (old.lflag ^ new.lflag) & ICANON != 0 {
            for e in self.inq.iter_mut() {
                e.1 = false;
            }
            if new.l(ICANON) && !self.inq.is_empty() {
                if let Some(last) = self.inq.back_mut() {
                    last.1 = true;
                }
                self.canon_head = self.inq.len();
            } else {
                self.canon_head = 0;
            }
            self.erasing = false;
            self.lnext = false;
        }
        if !new.i(IXON) && self.stopped && !self.tco_stopped {
            self.stopped = false;
        }
        self.process_input(sigs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(ld: &mut Ldisc, s: &[u8]) -> Signals {
        let mut sigs = Vec::new();
        assert_eq!(ld.master_write(s, &mut sigs), s.len());
        sigs
    }

    fn drain_out(ld: &mut Ldisc) -> Vec<u8> {
        let mut b = vec![0u8; 1 << 17];
        let n = ld.master_read(&mut b);
        b.truncate(n);
        b
    }

    fn read_slave(ld: &mut Ldisc) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        let n = if ld.canon() {
            ld.read_canon(&mut b)
        } else {
            ld.read_raw(&mut b)
        };
        b.truncate(n);
        let mut sigs = Vec::new();
        ld.process_input(&mut sigs);
        b
    }

    #[test]
    fn default_termios_matches_linux() {
        let t = Termios::pty_default();
        // `python3 -c 'import os,termios; print(termios.tcgetattr(os.openpty()[1]))'`
        assert_eq!((t.iflag, t.oflag, t.cflag, t.lflag), (1280, 5, 191, 35387));
        assert_eq!(
            hex(&t.to_bytes()),
            "0005000005000000bf0000003b8a000000031c7f150400010011131a00120f1716000000"
        );
        let t2 = Termios::pty_default().with_bytes(&t.to_bytes());
        assert_eq!(t2, t);
        assert_eq!(t.to_bytes2()[36..], [0, 0x96, 0, 0, 0, 0x96, 0, 0]);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn onlcr_and_echo() {
        let mut ld = Ldisc::new();
        assert_eq!(ld.slave_write(b"hi\n"), 3);
        assert_eq!(drain_out(&mut ld), b"hi\r\n");
        typed(&mut ld, b"abc");
        assert!(!ld.slave_readable(true));
        assert_eq!(drain_out(&mut ld), b"abc");
        typed(&mut ld, b"\r");
        assert_eq!(drain_out(&mut ld), b"\r\n");
        assert!(ld.slave_readable(true));
        assert_eq!(ld.slave_inq(), 4);
        assert_eq!(read_slave(&mut ld), b"abc\n");
    }

    #[test]
    fn line_editing_like_linux() {
        // The same bytes as a native run (see tests/sandbox.rs).
        let mut ld = Ldisc::new();
        typed(&mut ld, b"hello\x7fp wor\x17ld\x15again\n");
        assert_eq!(ld.slave_inq(), 6);
        assert_eq!(read_slave(&mut ld), b"again\n");
        let mut expect = b"hello\x08 \x08p wor".to_vec();
        expect.extend(b"\x08 \x08".repeat(3));
        expect.extend(b"ld");
        expect.extend(b"\x08 \x08".repeat(8));
        expect.extend(b"again\r\n");
        assert_eq!(drain_out(&mut ld), expect);
        typed(&mut ld, b"a\x04b\x04\x04");
        assert_eq!(read_slave(&mut ld), b"a");
        assert_eq!(read_slave(&mut ld), b"b");
        assert!(ld.slave_readable(false));
        assert_eq!(read_slave(&mut ld), b"");
        assert!(!ld.slave_readable(false));
        assert_eq!(drain_out(&mut ld), b"ab");
        typed(&mut ld, b"\t\x01x\x7f\x7f\x7f\n");
        let mut expect = b"\t^Ax".to_vec();
        expect.extend(b"\x08 \x08".repeat(3));
        expect.extend(b"\x08".repeat(6));
        expect.extend(b"\r\n");
        assert_eq!(drain_out(&mut ld), expect);
        assert_eq!(read_slave(&mut ld), b"\n");
    }

    #[test]
    fn isig_and_lnext() {
        let mut ld = Ldisc::new();
        assert_eq!(typed(&mut ld, b"xy\x03"), vec![libc::SIGINT]);
        assert_eq!(drain_out(&mut ld), b"xy^C");
        assert_eq!(ld.slave_inq(), 0);
        assert!(ld.inq.is_empty());
        assert_eq!(
            typed(&mut ld, b"\x1c\x1a"),
            vec![libc::SIGQUIT, libc::SIGTSTP]
        );
        typed(&mut ld, b"\x16\x03\n");
        assert_eq!(read_slave(&mut ld), b"\x03\n");
        ld.termios.lflag &= !ISIG;
        assert!(typed(&mut ld, b"\x03").is_empty());
    }

    #[test]
    fn raw_mode_and_switches() {
        let mut ld = Ldisc::new();
        typed(&mut ld, b"par");
        let mut raw = ld.termios;
        raw.lflag &= !(ICANON | ECHO);
        raw.iflag &= !ICRNL;
        let mut sigs = Vec::new();
        ld.set_termios(raw, &mut sigs);
        assert!(ld.slave_readable(false));
        typed(&mut ld, b"t\r");
        assert_eq!(read_slave(&mut ld), b"part\r");
        assert_eq!(drain_out(&mut ld), b"par");
        // Back to canonical: pending raw input becomes one line.
        typed(&mut ld, b"xyz");
        ld.set_termios(Termios::pty_default(), &mut sigs);
        assert!(ld.slave_readable(false));
        assert_eq!(read_slave(&mut ld), b"xyz");
        // VMIN with poll.
        raw.cc[VMIN] = 3;
        ld.set_termios(raw, &mut sigs);
        typed(&mut ld, b"ab");
        assert!(!ld.slave_readable(true) && ld.slave_readable(false));
    }

    #[test]
    fn flow_control() {
        let mut ld = Ldisc::new();
        typed(&mut ld, b"\x13");
        assert!(ld.stopped);
        typed(&mut ld, b"\x11");
        assert!(!ld.stopped);
        assert!(ld.inq.is_empty());
    }

    #[test]
    fn big_raw_input_waits_in_flip_buffer() {
        let mut ld = Ldisc::new();
        let mut raw = ld.termios;
        raw.lflag = 0;
        raw.iflag = 0;
        let mut sigs = Vec::new();
        ld.set_termios(raw, &mut sigs);
        let data = vec![b'z'; 10000];
        assert_eq!(ld.master_write(&data, &mut sigs), 10000);
        let mut total = 0;
        loop {
            let got = read_slave(&mut ld);
            if got.is_empty() {
                break;
            }
            total += got.len();
        }
        assert_eq!(total, 10000);
        assert_eq!(
            ld.master_write(&vec![0u8; FLIP_MAX + 10], &mut sigs),
            FLIP_MAX
        );
    }

    #[test]
    fn output_flags() {
        let mut ld = Ldisc::new();
        ld.termios.oflag |= XTABS | OLCUC;
        ld.slave_write(b"ab\tc\n");
        assert_eq!(drain_out(&mut ld), b"AB      C\r\n");
        ld.termios.oflag = 0;
        ld.slave_write(b"x\n");
        assert_eq!(drain_out(&mut ld), b"x\n");
    }

    #[test]
    fn speeds_follow_cflag() {
        let t = Termios::pty_default();
        let mut b = t.to_bytes();
        let cflag = (t.cflag & !CBAUD) | 0o15; // B9600
        b[8..12].copy_from_slice(&cflag.to_le_bytes());
        let t2 = t.with_bytes(&b);
        assert_eq!((t2.ispeed, t2.ospeed), (9600, 9600));
        let t3 = t.with_termio(&t.to_termio());
        assert_eq!(t3, t);
    }
}
