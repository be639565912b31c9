//! Ceremony state on its way to and from storage: versioned JSON, so a
//! state written by an older build is refused cleanly instead of being
//! misread. It never goes to the client.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::PasskeyError;

/// The state format this build writes and accepts.
pub(crate) const VERSION: u8 = 1;

/// A ceremony state that carries its format version.
pub(crate) trait Versioned: Serialize + DeserializeOwned {
    fn version(&self) -> u8;
}

pub(crate) fn encode<T: Versioned>(state: &T) -> String {
    // Serialising plain data into a String cannot fail.
    serde_json::to_string(state).unwrap_or_default()
}

pub(crate) fn decode<T: Versioned>(s: &str) -> Result<T, PasskeyError> {
    let st: T = serde_json::from_str(s).map_err(|_| PasskeyError::CeremonyInvalid)?;
    if st.version() != VERSION {
        return Err(PasskeyError::CeremonyInvalid);
    }
    Ok(st)
}
