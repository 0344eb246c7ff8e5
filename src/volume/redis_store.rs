//! placeholder
use super::*;
#[derive(Debug)]
pub struct RedisStore;
impl RedisStore {
    pub fn open(_u: &str, _o: VolumeOptions) -> Result<RedisStore, VolumeError> {
        Err(VolumeError::MissingUrl)
    }
}
impl VolumeStore for RedisStore {
    fn admit<'a>(&'a self, _c: &'a VolumeClaim) -> VolumeFuture<'a> {
        Box::pin(async { Err(VolumeError::MissingUrl) })
    }
}
