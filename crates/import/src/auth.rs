//! Integration-profile passwords: argon2id hashes, constant-time checks, generated passwords,
//! and rotation with a grace period for the previous password.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use bibgate_store::Profile;
use rand_core::{OsRng, RngCore};

/// Hashes a password as a PHC string (argon2id with the crate's default cost).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("could not hash the password: {e}"))
}

/// True when `password` matches the stored hash. The comparison is constant-time; a hash
/// that cannot be parsed never matches.
///
/// The check's memory (its cost: 19 MiB with [`hash_password`]'s) is kept per thread and
/// reused by the thread's next check: allocating it anew for every check leaves allocators
/// holding fragments of it, hundreds of MiB after a flood of logons. Checks belong on a few
/// threads of their own (as the gateway runs them).
pub fn verify_password(password: &str, hash: &str) -> bool {
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(parsed.algorithm);
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let params = Params::try_from(&parsed);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, params) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    out,
                    &mut blocks[..needed],
                )
                .map_err(|_| argon2::password_hash::Error::Password)
        })
    });
    computed.is_ok_and(|computed| computed == expected)
}

/// Spends what checking `password` against a profile's password costs, for a logon id that
/// has no profile, so that the time of a refusal does not tell known logon ids from unknown
/// ones: a verification against a fixed hash of a random password with the cost
/// [`hash_password`] gives every profile (made once per process, on first use). Always
/// false.
pub fn verify_dummy_password(password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default());
    std::hint::black_box(verify_password(password, hash));
    false
}

/// True when `password` is one the profile accepts at `now_unix`: the current password, or
/// the previous one before its expiry (see [`rotate`]).
pub fn verify_profile_password(profile: &Profile, password: &str, now_unix: i64) -> bool {
    profile
        .password_hashes_at(now_unix)
        .any(|hash| verify_password(password, hash))
}

/// Gives a profile a new password hash. The old password stays accepted for
/// `keep_previous_seconds` after `now_unix` (0 or less: it stops at once), so Connexion
/// clients configured with it keep working while they are updated. Only one previous
/// password is kept: a second rotation within the grace period ends the first one's.
pub fn rotate(profile: &mut Profile, new_hash: String, keep_previous_seconds: i64, now_unix: i64) {
    let old = std::mem::replace(&mut profile.password_hash, new_hash);
    if keep_previous_seconds > 0 {
        profile.previous_password_hash = Some(old);
        profile.previous_password_expires = Some(now_unix.saturating_add(keep_previous_seconds));
    } else {
        profile.previous_password_hash = None;
        profile.previous_password_expires = None;
    }
}

/// A random password of 20 characters from an alphabet without look-alikes.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_check_never_matches() {
        assert!(!verify_dummy_password(""));
        assert!(!verify_dummy_password("s3cret pw"));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("s3cret pw").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("s3cret"));
        assert!(verify_password("s3cret pw", &hash));
        assert!(!verify_password("s3cret pW", &hash));
        assert!(!verify_password("s3cret pw", "not a hash"));
    }

    fn cheap_hash(password: &str) -> String {
        use argon2::{Algorithm, Params, Version};
        let argon2 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        argon2
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string()
    }

    fn profile(hash: String) -> Profile {
        crate::default_profile("01DEMO_ALPHA", hash, bibgate_store::TargetZone::Institution)
    }

    #[test]
    fn a_rotation_accepts_both_passwords_until_the_previous_expires() {
        let mut p = profile(cheap_hash("old-pw"));
        rotate(&mut p, cheap_hash("new-pw"), 3_600, 1_000);
        assert_eq!(p.previous_password_expires, Some(4_600));
        assert!(verify_profile_password(&p, "new-pw", 1_000));
        assert!(verify_profile_password(&p, "old-pw", 1_000));
        assert!(verify_profile_password(&p, "old-pw", 4_599));
        assert!(!verify_profile_password(&p, "old-pw", 4_600));
        assert!(verify_profile_password(&p, "new-pw", 4_600));
        assert!(!verify_profile_password(&p, "other", 1_000));
        // A second rotation keeps only the password it replaces.
        rotate(&mut p, cheap_hash("newer-pw"), 3_600, 2_000);
        assert!(verify_profile_password(&p, "newer-pw", 2_000));
        assert!(verify_profile_password(&p, "new-pw", 2_000));
        assert!(!verify_profile_password(&p, "old-pw", 2_000));
    }

    #[test]
    fn a_rotation_without_grace_drops_the_previous_password() {
        let mut p = profile(cheap_hash("old-pw"));
        rotate(&mut p, cheap_hash("new-pw"), 0, 1_000);
        assert_eq!(p.previous_password_hash, None);
        assert_eq!(p.previous_password_expires, None);
        assert!(!verify_profile_password(&p, "old-pw", 1_000));
        assert!(verify_profile_password(&p, "new-pw", 1_000));
        // A previous hash with no expiry is never accepted.
        p.previous_password_hash = Some(cheap_hash("old-pw"));
        assert!(!verify_profile_password(&p, "old-pw", 1_000));
    }

    #[test]
    fn generated_passwords_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
