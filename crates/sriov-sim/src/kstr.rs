//! The kernel's string-to-number parsers (lib/kstrtox.c, lib/kstrtobool.c) and
//! `sysfs_streq`, so writes are accepted or refused exactly as sysfs does.

use nix::errno::Errno;

/// `kstrtoull(s, 0, ..)`: optional `+`, base from prefix (`0x` hex, `0` octal, else
/// decimal), one optional trailing newline. EINVAL on junk, ERANGE on overflow.
pub fn kstrtoull(s: &[u8]) -> Result<u64, Errno> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (radix, digits) =
        if let Some(rest) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
            (16, rest)
        } else if s.len() > 1 && s[0] == b'0' && s[1] != b'\n' {
            (8, &s[1..])
        } else {
            (10, s)
        };
    let mut value: u64 = 0;
    let mut n = 0;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            b'a'..=b'f' => u64::from(b - b'a' + 10),
            b'A'..=b'F' => u64::from(b - b'A' + 10),
            _ => break,
        };
        if d >= radix {
            break;
        }
        value = value.checked_mul(radix).and_then(|v| v.checked_add(d)).ok_or(Errno::ERANGE)?;
        n += 1;
    }
    if n == 0 {
        return Err(Errno::EINVAL);
    }
    match &digits[n..] {
        b"" | b"\n" => Ok(value),
        _ => Err(Errno::EINVAL),
    }
}

/// `kstrtou16(s, 0, ..)`.
pub fn kstrtou16(s: &[u8]) -> Result<u16, Errno> {
    u16::try_from(kstrtoull(s)?).map_err(|_| Errno::ERANGE)
}

/// `kstrtoint(s, 0, ..)`: like [`kstrtoull`] with an optional leading `-`.
pub fn kstrtoint(s: &[u8]) -> Result<i32, Errno> {
    if let Some(rest) = s.strip_prefix(b"-") {
        let v = kstrtoull(rest)?;
        let v = i64::try_from(v).map_err(|_| Errno::ERANGE)?;
        i32::try_from(-v).map_err(|_| Errno::ERANGE)
    } else {
        i32::try_from(kstrtoull(s)?).map_err(|_| Errno::ERANGE)
    }
}

/// `kstrtobool`: `y Y 1 on` true, `n N 0 off` false (only the first chars matter).
pub fn kstrtobool(s: &[u8]) -> Result<bool, Errno> {
    match s {
        [b'y' | b'Y' | b'1', ..] => Ok(true),
        [b'n' | b'N' | b'0', ..] => Ok(false),
        [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
        [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
        _ => Err(Errno::EINVAL),
    }
}

/// `sysfs_streq`: equal, ignoring one trailing newline on either side.
pub fn sysfs_streq(a: &[u8], b: &[u8]) -> bool {
    let strip = |s: &'_ [u8]| -> Vec<u8> { s.strip_suffix(b"\n").unwrap_or(s).to_vec() };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstrtou16_matches_kernel() {
        assert_eq!(kstrtou16(b"9\n"), Ok(9));
        assert_eq!(kstrtou16(b"+12"), Ok(12));
        assert_eq!(kstrtou16(b"0x10"), Ok(16));
        assert_eq!(kstrtou16(b"010"), Ok(8));
        assert_eq!(kstrtou16(b"0\n"), Ok(0));
        assert_eq!(kstrtou16(b"0"), Ok(0));
        assert_eq!(kstrtou16(b"65536"), Err(Errno::ERANGE));
        assert_eq!(kstrtou16(b"abc"), Err(Errno::EINVAL));
        assert_eq!(kstrtou16(b""), Err(Errno::EINVAL));
        assert_eq!(kstrtou16(b"\n"), Err(Errno::EINVAL));
        assert_eq!(kstrtou16(b"4 "), Err(Errno::EINVAL));
        assert_eq!(kstrtou16(b"4\n\n"), Err(Errno::EINVAL));
        assert_eq!(kstrtou16(b"-1"), Err(Errno::EINVAL));
        assert_eq!(kstrtou16(b"08"), Err(Errno::EINVAL));
        assert_eq!(kstrtoull(b"99999999999999999999999"), Err(Errno::ERANGE));
    }

    #[test]
    fn kstrtoint_and_bool() {
        assert_eq!(kstrtoint(b"-1\n"), Ok(-1));
        assert_eq!(kstrtoint(b"3"), Ok(3));
        assert_eq!(kstrtoint(b"x"), Err(Errno::EINVAL));
        assert_eq!(kstrtobool(b"1\n"), Ok(true));
        assert_eq!(kstrtobool(b"off"), Ok(false));
        assert_eq!(kstrtobool(b"on"), Ok(true));
        assert_eq!(kstrtobool(b"N"), Ok(false));
        assert_eq!(kstrtobool(b"2"), Err(Errno::EINVAL));
        assert_eq!(kstrtobool(b""), Err(Errno::EINVAL));
    }

    #[test]
    fn streq() {
        assert!(sysfs_streq(b"0000:3b:02.0\n", b"0000:3b:02.0"));
        assert!(!sysfs_streq(b"0000:3b:02.0 ", b"0000:3b:02.0"));
    }
}
