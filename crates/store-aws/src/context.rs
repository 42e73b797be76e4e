//! The SDK configuration and the runtime the synchronous ports run their requests on.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;
use aws_types::service_config::ServiceConfigKey;
use tokio::runtime::Runtime;

use crate::{Error, Result};

/// The AWS configuration shared by [`crate::DynamoStore`] and [`crate::S3BlobStore`]:
/// loaded once, cheap to clone.
#[derive(Clone, Debug)]
pub struct AwsContext {
    sdk: SdkConfig,
    bridge: Arc<Bridge>,
}

/// Owns the runtime; shuts it down without blocking when the last user goes.
#[derive(Debug)]
pub(crate) struct Bridge {
    runtime: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(runtime) = runtime {
            // A plain drop blocks, which panics inside async code.
            runtime.shutdown_background();
        }
    }
}

fn new_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bibgate-aws")
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

impl AwsContext {
    /// Loads the SDK configuration from the standard environment (credentials, region,
    /// `AWS_ENDPOINT_URL*`, profile) with a rustls + ring HTTPS client.
    pub fn from_env() -> Result<AwsContext> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // Loading reads files and may ask IMDS/ECS for the region: run it on the adapter's
        // runtime, from any calling context.
        let loader = AwsContext::with_runtime(SdkConfig::builder().build(), new_runtime()?);
        let sdk = loader.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .load(),
        );
        Ok(AwsContext {
            sdk,
            bridge: loader.bridge,
        })
    }

    /// Uses a configuration the caller loaded (it should carry an HTTP client).
    pub fn from_config(sdk: SdkConfig) -> Result<AwsContext> {
        Ok(AwsContext::with_runtime(sdk, new_runtime()?))
    }

    fn with_runtime(sdk: SdkConfig, runtime: Runtime) -> AwsContext {
        let handle = runtime.handle().clone();
        AwsContext {
            sdk,
            bridge: Arc::new(Bridge {
                runtime: Mutex::new(Some(runtime)),
                handle,
            }),
        }
    }

    /// The SDK configuration.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk
    }

    /// True when an endpoint URL is configured for the service (`AWS_ENDPOINT_URL`, its
    /// per-service variant, or the profile), i.e. not the service's AWS endpoint.
    pub fn has_custom_endpoint(&self, service_id: &str) -> bool {
        if self.sdk.endpoint_url().is_some() {
            return true;
        }
        let Ok(key) = ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
        else {
            return false;
        };
        self.sdk
            .service_config()
            .and_then(|config| config.load_config(key))
            .is_some()
    }

    /// Runs a future to completion on the adapter's runtime, from any thread.
    pub(crate) fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside some runtime's context (an async task, or a blocking-pool thread):
            // `block_on` may panic there, so drive the future from a helper thread.
            let handle = &self.bridge.handle;
            std::thread::scope(
                |scope| match scope.spawn(move || handle.block_on(future)).join() {
                    Ok(output) => output,
                    Err(payload) => std::panic::resume_unwind(payload),
                },
            )
        } else {
            self.bridge.handle.block_on(future)
        }
    }
}
