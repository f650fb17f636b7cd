//! Only the runtime can be executed: a Landlock ruleset that handles the execute right and grants
//! it to the runtime's executable and its program interpreter (the dynamic loader), nothing else.
//!
//! The root a worker sees holds no other program, but its own function directory can: an archive
//! keeps execute bits, so a tenant could ship a binary and `execve` it (no new process, since the
//! system-call filter refuses those, but another program in place of the runtime). `/fn` cannot be
//! mounted `noexec`, because vendored extension modules (`.so` files a Python package ships) are
//! mapped executable; Landlock's execute right is checked by `execve` and not by `mmap`, so it
//! stops exactly the programs and leaves the libraries alone. Built with the `landlock` crate (the
//! Landlock maintainers' own), required in full once the host said it supports Landlock.

use std::io::Read;
use std::path::{Path, PathBuf};

use landlock::{
    AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};

/// Whether this kernel has Landlock (ABI 1 or later, which has the execute right).
pub fn available() -> bool {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, zero size and the VERSION flag, the call only returns the ABI.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    abi >= 1
}

/// Restricts the calling process (and what it execs) to executing `program` and its interpreter.
pub fn allow_only(program: &Path) -> Result<(), String> {
    let mut allowed = vec![program.to_path_buf()];
    allowed.extend(elf_interpreter(program)?);
    let failed = |error: &dyn std::fmt::Display| format!("restrict execution to the runtime: {error}");
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::Execute)
        .map_err(|error| failed(&error))?
        .create()
        .map_err(|error| failed(&error))?;
    for path in &allowed {
        let file = PathFd::new(path).map_err(|error| failed(&error))?;
        ruleset = ruleset.add_rule(PathBeneath::new(file, AccessFs::Execute)).map_err(|error| failed(&error))?;
    }
    let status = ruleset.restrict_self().map_err(|error| failed(&error))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(failed(&"the kernel did not enforce the ruleset"));
    }
    Ok(())
}

/// The `PT_INTERP` path of an ELF executable, if it has one (a script or a static binary has none).
pub fn elf_interpreter(program: &Path) -> Result<Option<PathBuf>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(program)
        .and_then(|file| file.take(64 << 10).read_to_end(&mut bytes))
        .map_err(|error| format!("read {}: {error}", program.display()))?;
    Ok(parse_interpreter(&bytes).map(PathBuf::from))
}

/// Reads `PT_INTERP` from the first bytes of a 64-bit little-endian ELF file.
fn parse_interpreter(bytes: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    // Every offset comes from the file: checked, never trusted.
    let field = |offset: usize, size: usize| bytes.get(offset..offset.checked_add(size)?);
    let u16_at = |offset: usize| Some(u16::from_le_bytes(field(offset, 2)?.try_into().ok()?));
    let u32_at = |offset: usize| Some(u32::from_le_bytes(field(offset, 4)?.try_into().ok()?));
    let u64_at = |offset: usize| Some(u64::from_le_bytes(field(offset, 8)?.try_into().ok()?));
    // 64-bit (class 2), little-endian (data 1).
    if bytes.get(..4)? != b"\x7fELF" || bytes.get(4)? != &2 || bytes.get(5)? != &1 {
        return None;
    }
    let header_table = usize::try_from(u64_at(0x20)?).ok()?;
    let (entry_size, entries) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..entries).find_map(|index| {
        let header = header_table.checked_add(index.checked_mul(entry_size)?)?;
        if u32_at(header)? != PT_INTERP {
            return None;
        }
        let offset = usize::try_from(u64_at(header.checked_add(0x08)?)?).ok()?;
        let size = usize::try_from(u64_at(header.checked_add(0x20)?)?).ok()?;
        let raw = bytes.get(offset..offset.checked_add(size)?)?;
        let path = raw.split(|byte| *byte == 0).next()?;
        String::from_utf8(path.to_vec()).ok().filter(|path| path.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_of_a_dynamic_executable_is_found() {
        let interpreter = elf_interpreter(Path::new("/bin/sh")).unwrap().expect("/bin/sh is dynamically linked");
        assert!(interpreter.to_string_lossy().contains("ld-"), "{interpreter:?}");
    }

    #[test]
    fn scripts_and_garbage_have_no_interpreter() {
        assert_eq!(parse_interpreter(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(parse_interpreter(b"\x7fELF\x02\x01"), None, "a truncated header");
        let mut hostile = b"\x7fELF\x02\x01".to_vec();
        hostile.resize(64, 0xff);
        assert_eq!(parse_interpreter(&hostile), None, "offsets past the end");
    }
}
