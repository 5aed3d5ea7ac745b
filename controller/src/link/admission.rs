//! Admission for report ingest: how much frame memory all sessions together may hold, how
//! many reports of one tenant are applied to the database at once, and how much of the
//! application pool all agents' work may take together.
//!
//! Both exist because the per-connection limits (one session per host, four streams, a frame
//! deadline) still let *many* hosts add up: 50 hosts each declaring a 4 MiB frame pinned
//! 200 MiB, and one tenant's flood of reports took every pooled connection so another
//! tenant's reports waited seconds. A [`tokio::sync::Semaphore`] is first-come first-served,
//! so waiting here is fair between the hosts (and tenants) that wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Bytes of report frames all sessions may be reading or holding at once. Far above what a
/// fleet of honest agents needs (reports are kilobytes, the frame limit is 4 MiB) and far
/// below what hurts a small controller.
pub const DEFAULT_FRAME_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// The part of the frame budget one tenant's hosts may hold together: a quarter, so a
/// tenant whose hosts all stall mid-frame throttles only itself.
const TENANT_FRAME_SHARE_DIVISOR: u32 = 4;
/// Reports of one tenant applied at once: half the application pool (16), so one tenant
/// can neither starve another nor the API.
pub const DEFAULT_TENANT_CONCURRENCY: usize = 8;

/// Reports (of all tenants) applied at once, session check-ins included: the application
/// pool (16) less the two group-commit writers and two connections kept for the API and
/// background work. Past this, sessions wait here, in order, for as long as it takes —
/// never at the pool, whose 10 s acquire timeout would fail the report and close the
/// session (a burst of 10 000 agents did exactly that before this existed).
pub const DEFAULT_INGEST_CONCURRENCY: usize = 12;

/// The budget unit: frames are charged in whole KiB.
const UNIT: usize = 1024;

/// What [`Admission::new`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    pub frame_budget_bytes: usize,
    pub tenant_concurrency: usize,
    /// All tenants' reports and check-ins at once.
    pub ingest_concurrency: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            frame_budget_bytes: DEFAULT_FRAME_BUDGET_BYTES,
            tenant_concurrency: DEFAULT_TENANT_CONCURRENCY,
            ingest_concurrency: DEFAULT_INGEST_CONCURRENCY,
        }
    }
}

/// Shared by every session of one controller process.
#[derive(Debug)]
pub struct Admission {
    frame_units: Arc<Semaphore>,
    total_units: u32,
    tenant_units: u32,
    tenant_concurrency: usize,
    /// The share of the application pool agents' work may hold.
    database: Arc<Semaphore>,
    ingest_concurrency: usize,
    tenants: Mutex<HashMap<Uuid, Arc<TenantGate>>>,
    /// Most frame budget ever held at once, in units (observability and tests).
    frame_units_high_water: AtomicU32,
    /// Most reports of one tenant ever applied at once.
    tenant_high_water: AtomicUsize,
    /// Most reports and check-ins ever holding the database share at once.
    database_high_water: AtomicUsize,
}

/// One tenant's share of the frame budget and of ingest concurrency.
#[derive(Debug)]
struct TenantGate {
    frame_units: Arc<Semaphore>,
    ingest: Arc<Semaphore>,
}

/// Held while a frame's payload is read, decoded and applied; returns the budget (the
/// tenant's share and the global) on drop.
#[derive(Debug)]
pub struct FramePermit {
    _tenant: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

/// Held while one report of a tenant is applied: the tenant's share and the global one.
#[derive(Debug)]
pub struct TenantPermit {
    _tenant: OwnedSemaphorePermit,
    _database: DatabasePermit,
}

/// Held while agent work (a report, a check-in) uses the application pool.
#[derive(Debug)]
pub struct DatabasePermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// The semaphores were closed: only while the process shuts down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the controller is shutting down")]
pub struct AdmissionClosed;

/// What [`Admission::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionStats {
    pub frame_budget_bytes: usize,
    /// What one tenant's hosts may hold together.
    pub tenant_frame_share_bytes: usize,
    pub frame_bytes_high_water: usize,
    pub tenant_concurrency: usize,
    pub tenant_concurrency_high_water: usize,
    pub ingest_concurrency: usize,
    pub ingest_concurrency_high_water: usize,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        // Semaphore permits are u32 in acquire_many: a budget beyond 4 TiB is clamped.
        let total_units =
            u32::try_from((limits.frame_budget_bytes / UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            frame_units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            tenant_units: (total_units / TENANT_FRAME_SHARE_DIVISOR).max(1),
            tenant_concurrency: limits.tenant_concurrency.max(1),
            database: Arc::new(Semaphore::new(limits.ingest_concurrency.max(1))),
            ingest_concurrency: limits.ingest_concurrency.max(1),
            tenants: Mutex::new(HashMap::new()),
            frame_units_high_water: AtomicU32::new(0),
            tenant_high_water: AtomicUsize::new(0),
            database_high_water: AtomicUsize::new(0),
        }
    }

    /// Waits until a frame of `len` payload bytes of `tenant_id`'s host fits in that tenant's
    /// share and in the global budget. A frame larger than the share takes all of it (it
    /// still cannot exceed the frame limit) rather than waiting forever.
    pub async fn frame(&self, tenant_id: Uuid, len: usize) -> Result<FramePermit, AdmissionClosed> {
        let units = self.units_for(len);
        let gate = self.gate(tenant_id);
        let tenant = gate
            .frame_units
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| AdmissionClosed)?;
        let global = self
            .frame_units
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| AdmissionClosed)?;
        let in_use = self.total_units - available_units(&self.frame_units);
        self.frame_units_high_water
            .fetch_max(in_use, Ordering::Relaxed);
        Ok(FramePermit {
            _tenant: tenant,
            _global: global,
        })
    }

    /// Waits until fewer than the tenant's share of reports are being applied, then for
    /// room in the global share. In that order: a tenant's queued reports wait on their own
    /// gate and hold no global room another tenant could use.
    pub async fn tenant(&self, tenant_id: Uuid) -> Result<TenantPermit, AdmissionClosed> {
        let gate = self.gate(tenant_id);
        let permit = gate
            .ingest
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AdmissionClosed)?;
        let in_use = self.tenant_concurrency - gate.ingest.available_permits();
        self.tenant_high_water.fetch_max(in_use, Ordering::Relaxed);
        Ok(TenantPermit {
            _tenant: permit,
            _database: self.database().await?,
        })
    }

    /// Waits for room in the share of the application pool all agents' work may hold.
    pub async fn database(&self) -> Result<DatabasePermit, AdmissionClosed> {
        let permit = self
            .database
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AdmissionClosed)?;
        let in_use = self.ingest_concurrency - self.database.available_permits();
        self.database_high_water
            .fetch_max(in_use, Ordering::Relaxed);
        Ok(DatabasePermit(permit))
    }

    /// The tenant's gate, made on first use. Gates are kept for the process's life: one per
    /// tenant with connected hosts, a few hundred bytes each.
    fn gate(&self, tenant_id: Uuid) -> Arc<TenantGate> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants
            .entry(tenant_id)
            .or_insert_with(|| {
                Arc::new(TenantGate {
                    frame_units: Arc::new(Semaphore::new(self.tenant_units as usize)),
                    ingest: Arc::new(Semaphore::new(self.tenant_concurrency)),
                })
            })
            .clone()
    }

    pub fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            frame_budget_bytes: self.total_units as usize * UNIT,
            tenant_frame_share_bytes: self.tenant_units as usize * UNIT,
            frame_bytes_high_water: self.frame_units_high_water.load(Ordering::Relaxed) as usize
                * UNIT,
            tenant_concurrency: self.tenant_concurrency,
            tenant_concurrency_high_water: self.tenant_high_water.load(Ordering::Relaxed),
            ingest_concurrency: self.ingest_concurrency,
            ingest_concurrency_high_water: self.database_high_water.load(Ordering::Relaxed),
        }
    }

    fn units_for(&self, len: usize) -> u32 {
        u32::try_from(len.div_ceil(UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(self.tenant_units)
    }
}

fn available_units(semaphore: &Semaphore) -> u32 {
    u32::try_from(semaphore.available_permits()).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(budget: usize, tenants: usize) -> AdmissionLimits {
        AdmissionLimits {
            frame_budget_bytes: budget,
            tenant_concurrency: tenants,
            ingest_concurrency: 64,
        }
    }

    async fn blocks<F: std::future::Future>(future: F) -> bool {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn frames_wait_until_the_tenant_share_has_room_and_get_it_back_on_drop() {
        // 32 KiB in all, 8 KiB per tenant.
        let admission = Admission::new(limits(32 * UNIT, 1));
        let t = Uuid::new_v4();
        let first = admission.frame(t, 6 * UNIT).await.unwrap();
        assert!(
            blocks(admission.frame(t, 3 * UNIT)).await,
            "6 + 3 KiB exceed the 8 KiB share"
        );
        drop(first);
        let _second = admission.frame(t, 3 * UNIT).await.unwrap();
        assert_eq!(admission.stats().frame_bytes_high_water, 6 * UNIT);
        assert_eq!(admission.stats().tenant_frame_share_bytes, 8 * UNIT);
    }

    #[tokio::test]
    async fn the_global_budget_holds_across_tenants() {
        let admission = Admission::new(limits(16 * UNIT, 1));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(admission.frame(Uuid::new_v4(), 4 * UNIT).await.unwrap());
        }
        assert!(
            blocks(admission.frame(Uuid::new_v4(), UNIT)).await,
            "16 KiB are taken"
        );
        assert_eq!(admission.stats().frame_bytes_high_water, 16 * UNIT);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_share_takes_all_of_it_rather_than_waiting_forever() {
        let admission = Admission::new(limits(16 * UNIT, 1));
        let _all = admission.frame(Uuid::new_v4(), 100 * UNIT).await.unwrap();
        assert_eq!(admission.stats().frame_bytes_high_water, 4 * UNIT);
    }

    #[tokio::test]
    async fn empty_and_tiny_frames_still_cost_one_unit() {
        let admission = Admission::new(limits(8 * UNIT, 1));
        let t = Uuid::new_v4();
        let _a = admission.frame(t, 0).await.unwrap();
        let _b = admission.frame(t, 1).await.unwrap();
        assert!(
            blocks(admission.frame(t, 1)).await,
            "a 2 KiB share holds two frames"
        );
    }

    #[tokio::test]
    async fn one_tenant_at_its_share_does_not_hold_up_another() {
        let admission = Admission::new(limits(16 * UNIT, 2));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let _a1 = admission.tenant(a).await.unwrap();
        let _a2 = admission.tenant(a).await.unwrap();
        assert!(
            blocks(admission.tenant(a)).await,
            "tenant a is at its share"
        );
        assert!(
            !blocks(admission.tenant(b)).await,
            "tenant b is not affected"
        );
        let _af = admission.frame(a, 4 * UNIT).await.unwrap();
        assert!(blocks(admission.frame(a, UNIT)).await);
        assert!(!blocks(admission.frame(b, 4 * UNIT)).await);
        assert_eq!(admission.stats().tenant_concurrency_high_water, 2);
    }

    #[tokio::test]
    async fn all_tenants_together_wait_for_the_global_share_and_get_it_back_on_drop() {
        let admission = Admission::new(AdmissionLimits {
            frame_budget_bytes: 16 * UNIT,
            tenant_concurrency: 2,
            ingest_concurrency: 3,
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let a1 = admission.tenant(a).await.unwrap();
        let _a2 = admission.tenant(a).await.unwrap();
        let _check_in = admission.database().await.unwrap();
        assert!(
            blocks(admission.tenant(b)).await,
            "b is within its share, but the three global permits are held"
        );
        assert!(blocks(admission.database()).await, "check-ins wait too");
        drop(a1);
        let _b1 = admission.tenant(b).await.unwrap();
        let stats = admission.stats();
        assert_eq!(
            (
                stats.ingest_concurrency,
                stats.ingest_concurrency_high_water
            ),
            (3, 3)
        );
    }

    #[tokio::test]
    async fn a_tenant_waiting_at_its_own_gate_holds_no_global_room() {
        let admission = Arc::new(Admission::new(AdmissionLimits {
            frame_budget_bytes: 16 * UNIT,
            tenant_concurrency: 1,
            ingest_concurrency: 2,
        }));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let _a1 = admission.tenant(a).await.unwrap();
        // Many of a's reports queue behind its one permit, and stay queued...
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let admission = admission.clone();
                tokio::spawn(async move {
                    let _held = admission.tenant(a).await;
                    std::future::pending::<()>().await;
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiting.iter().all(|w| !w.is_finished()));
        // ...and b still gets the second global permit (had a's waiters taken the global
        // permit first, it would be gone).
        assert!(!blocks(admission.tenant(b)).await);
        for w in waiting {
            w.abort();
        }
    }
}
