//! `mqtt-sec passwd`: mosquitto password files, like mosquitto_passwd
//! (`-c`, `-b`, `-D`, `-I`), plus `--verify`. New hashes use 210,000
//! PBKDF2 iterations unless `-I` says otherwise (mosquitto_passwd: 101).

use std::num::NonZeroU32;
use std::process::ExitCode;

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};

use crate::PasswdArgs;
use crate::io::{CliError, failed, print_json, read_stdin_line, read_text, write_private_owned};
use mqtt_sec_core::Chain;

fn load(args: &PasswdArgs) -> Result<PasswordFile, CliError> {
    PasswordFile::parse(&read_text(&args.file)?).map_err(|e| CliError::at(&args.file, Chain(&e)))
}

pub(crate) fn run(args: &PasswdArgs, json: bool) -> Result<ExitCode, CliError> {
    if args.verify {
        let file = load(args)?;
        let password = SecretString::from(read_stdin_line()?);
        let valid = file.verify(&args.user, &password);
        if json {
            print_json(&serde_json::json!({ "user": args.user, "valid": valid }));
        } else {
            println!("{}", if valid { "valid" } else { "invalid" });
        }
        return Ok(if valid { ExitCode::SUCCESS } else { failed() });
    }
    if args.password.is_some() && !args.batch {
        return Err(CliError::new("a password argument needs -b"));
    }
    let mut file = if args.create {
        PasswordFile::new()
    } else {
        load(args)?
    };
    if args.delete {
        if !file.remove(&args.user) {
            return Err(CliError::at(&args.file, format!("no user {:?}", args.user)));
        }
    } else {
        let password = match &args.password {
            Some(password) => SecretString::from(password.clone()),
            None => SecretString::from(read_stdin_line()?),
        };
        let params = match args.iterations {
            None => HashParams::STRONG,
            Some(n) => HashParams::with_iterations(
                NonZeroU32::new(n)
                    .ok_or_else(|| CliError::new("-I: iterations must be positive"))?,
            ),
        };
        file.set(&args.user, &password, params)
            .map_err(|e| CliError::new(format!("{}: {}", args.user, Chain(&e))))?;
    }
    let owner = owner(args)?;
    write_private_owned(&args.file, file.to_string().as_bytes(), false, owner)?;
    Ok(ExitCode::SUCCESS)
}

/// Who owns the file written: mosquitto 2.0 reads its password file as the
/// user it drops privileges to (`user`, default `mosquitto`; it rereads the
/// file on SIGHUP that way) and, from 2.0.16, warns when the file is
/// readable by others or owned by another user, saying future versions will
/// refuse it. So the file is mode 0600, and owned by: `--owner` when given;
/// else the owner of the file it replaces (an edit never takes the file
/// away from the broker); else, for a new file written by root, the
/// `mosquitto` user when it exists; else whoever runs the command.
fn owner(args: &PasswdArgs) -> Result<Option<(u32, u32)>, CliError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Some(spec) = &args.owner {
            return user_and_group(spec).map(Some);
        }
        // The file itself, not what a symbolic link there points to: the
        // rename below replaces the link, and an edit must not hand the new
        // file to the owner of some other file.
        if let Ok(meta) = std::fs::symlink_metadata(&args.file)
            && meta.file_type().is_file()
        {
            return Ok(Some((meta.uid(), meta.gid())));
        }
        if nix::unistd::Uid::effective().is_root()
            && let Ok(Some(user)) = nix::unistd::User::from_name("mosquitto")
        {
            return Ok(Some((user.uid.as_raw(), user.gid.as_raw())));
        }
        Ok(None)
    }
    #[cfg(not(unix))]
    {
        let _ = args;
        Ok(None)
    }
}

/// `USER` (its primary group) or `USER:GROUP`.
#[cfg(unix)]
fn user_and_group(spec: &str) -> Result<(u32, u32), CliError> {
    let (user_name, group_name) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let user = nix::unistd::User::from_name(user_name)
        .ok()
        .flatten()
        .ok_or_else(|| CliError::new(format!("--owner: no user {user_name:?}")))?;
    let gid = match group_name {
        None => user.gid.as_raw(),
        Some(name) => nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| CliError::new(format!("--owner: no group {name:?}")))?
            .gid
            .as_raw(),
    };
    Ok((user.uid.as_raw(), gid))
}
