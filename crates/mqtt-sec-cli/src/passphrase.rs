//! Passphrases of encrypted keys: from a file (`--passphrase-file`) or typed
//! at the terminal with echo off, never from an argument (other local users
//! can read a process's arguments).

use std::path::Path;

use mqtt_sec_core::Chain;
use mqtt_sec_core::passphrase::{MAX_PASSPHRASE_LEN, Passphrase};

use crate::io::CliError;

/// Shortest passphrase a new encryption accepts, in bytes: below it a
/// guesser's work is small whatever the KDF costs.
pub(crate) const MIN_NEW_PASSPHRASE_LEN: usize = 8;

/// What the passphrase is for: what the prompt says, and for a new
/// encryption, a second prompt to catch a typo and the minimum length.
#[derive(Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// Decrypt the key in this file.
    Decrypt(&'a Path),
    /// Encrypt a key to be written to this file.
    Encrypt(&'a Path),
    /// Log in to the PKCS#11 token of this label.
    TokenPin(&'a str),
}

/// The passphrase in `file`, or typed at the terminal when there is none.
pub(crate) fn read(file: Option<&Path>, purpose: Purpose<'_>) -> Result<Passphrase, CliError> {
    let passphrase = match file {
        Some(path) => {
            Passphrase::from_file(path).map_err(|e| CliError::new(Chain(&e).to_string()))?
        }
        None => from_terminal(purpose)?,
    };
    if let Purpose::Encrypt(_) = purpose
        && passphrase.expose_secret().len() < MIN_NEW_PASSPHRASE_LEN
    {
        return Err(CliError::new(format!(
            "the new passphrase is shorter than {MIN_NEW_PASSPHRASE_LEN} bytes"
        )));
    }
    Ok(passphrase)
}

fn from_terminal(purpose: Purpose<'_>) -> Result<Passphrase, CliError> {
    let invalid = |e: mqtt_sec_core::passphrase::PassphraseError| {
        CliError::new(format!("terminal: {}", Chain(&e)))
    };
    match purpose {
        Purpose::Decrypt(key) => {
            let typed = terminal::read_secret_line(&format!("Passphrase for {}: ", key.display()))?;
            Passphrase::from_bytes(typed.as_slice().into()).map_err(invalid)
        }
        Purpose::TokenPin(token) => {
            let typed = terminal::read_secret_line(&format!("PIN of the token {token}: "))?;
            Passphrase::from_bytes(typed.as_slice().into()).map_err(invalid)
        }
        Purpose::Encrypt(out) => {
            let typed =
                terminal::read_secret_line(&format!("New passphrase for {}: ", out.display()))?;
            let again = terminal::read_secret_line("Repeat the passphrase: ")?;
            if typed != again {
                return Err(CliError::new("terminal: the passphrases differ"));
            }
            Passphrase::from_bytes(typed.as_slice().into()).map_err(invalid)
        }
    }
}

#[cfg(unix)]
mod terminal {
    use std::fs::{File, OpenOptions};
    use std::io::{Read as _, Write as _};

    use mqtt_sec_core::Chain;
    use nix::sys::termios::{LocalFlags, SetArg, Termios, tcgetattr, tcsetattr};
    use zeroize::Zeroizing;

    use super::MAX_PASSPHRASE_LEN;
    use crate::io::CliError;

    /// Puts the terminal's echo back however the read ends.
    struct EchoOff<'a> {
        tty: &'a File,
        original: Termios,
    }

    impl Drop for EchoOff<'_> {
        fn drop(&mut self) {
            let _ = tcsetattr(self.tty, SetArg::TCSANOW, &self.original);
        }
    }

    /// One line typed at the controlling terminal (`/dev/tty`, so standard
    /// input stays free for the data), not echoed, without its line
    /// ending. Refused past [`MAX_PASSPHRASE_LEN`] bytes.
    pub(super) fn read_secret_line(prompt: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let failed = |e: &(dyn std::error::Error + 'static)| {
            CliError::new(format!(
                "no terminal to read the passphrase from ({}); give --passphrase-file",
                Chain(e)
            ))
        };
        let mut tty = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|e| failed(&e))?;
        let original = tcgetattr(&tty).map_err(|e| failed(&e))?;
        let mut silent = original.clone();
        silent.local_flags.remove(LocalFlags::ECHO);
        // The newline the user types is still shown, so the next output
        // starts on its own line.
        silent.local_flags.insert(LocalFlags::ECHONL);
        tty.write_all(prompt.as_bytes())
            .and_then(|()| tty.flush())
            .map_err(|e| failed(&e))?;
        let guard = EchoOff {
            tty: &tty,
            original,
        };
        tcsetattr(guard.tty, SetArg::TCSANOW, &silent).map_err(|e| failed(&e))?;
        // Allocated once at its largest so no copy of the secret is left
        // behind by a reallocation.
        let mut line = Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE_LEN + 1));
        let mut byte = [0u8; 1];
        loop {
            // read_exact retries a read interrupted by a signal. End of
            // input (Ctrl-D) ends the line (pty-tested); another error of
            // the terminal is reported, which no test can provoke (the
            // guard's `true` mutant survives for that reason).
            match (&*guard.tty).read_exact(&mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(CliError::new(format!("terminal: {}", Chain(&e)))),
                Ok(()) if byte[0] == b'\n' => break,
                // Room for the longest passphrase and the `\r` of a raw
                // terminal; a longer line is refused by Passphrase with the
                // same message. So `>=` and `==` here differ from `>` only
                // for the longest passphrase followed by a `\r`, which a
                // terminal in canonical mode (ICRNL) never delivers: their
                // mutants survive the pty test and are accepted as such.
                Ok(()) if line.len() > MAX_PASSPHRASE_LEN => {
                    return Err(CliError::new(format!(
                        "terminal: the passphrase is longer than {MAX_PASSPHRASE_LEN} bytes"
                    )));
                }
                Ok(()) => line.push(byte[0]),
            }
        }
        byte.fill(0);
        drop(guard);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }
}

// Not built on the Unix machines the tests run on, so cargo mutants'
// mutants of it cannot fail a test there.
#[cfg(not(unix))]
mod terminal {
    use crate::io::CliError;

    pub(super) fn read_secret_line(_prompt: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, CliError> {
        Err(CliError::new(
            "reading a passphrase from the terminal is built for Unix only; give --passphrase-file",
        ))
    }
}
