//! `mqtt-sec passwd`: mosquitto password files, like mosquitto_passwd
//! (`-c`, `-b`, `-D`, `-I`), plus `--verify`. New hashes use 210,000
//! PBKDF2 iterations unless `-I` says otherwise (mosquitto_passwd: 101).

use std::num::NonZeroU32;
use std::process::ExitCode;

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};

use crate::PasswdArgs;
use crate::io::{CliError, failed, print_json, read_stdin_line, read_text, write_private};
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
    write_private(&args.file, file.to_string().as_bytes(), false)?;
    Ok(ExitCode::SUCCESS)
}
