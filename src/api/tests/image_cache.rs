//! The periodic prune of the backends' image caches, on the fake driver: it runs once its
//! interval has passed, with the configured minimum age, and never with an interval of 0.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;

/// Waits until the fake driver has been asked to prune `n` times.
async fn wait_prunes(app: &TestApp, n: usize) -> Vec<Duration> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = app.driver.prune_calls();
        if calls.len() >= n || Instant::now() > end {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_image_caches_are_pruned_every_interval() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        image_cache_interval_secs: 1,
        image_cache_min_age_secs: 7200,
        ..Default::default()
    })
    .await;
    // Not before the first interval has passed; the prune is not counted as a server task.
    assert_eq!(app.compute.run_periodic_tasks().await, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.driver.prune_calls().is_empty());
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(app.compute.run_periodic_tasks().await, 0);
    // One backend (the fake serves every kind): one call, with the minimum age.
    assert_eq!(wait_prunes(&app, 1).await, vec![Duration::from_secs(7200)]);
    // Not again within the next interval.
    app.compute.run_periodic_tasks().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.driver.prune_calls().len(), 1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    app.compute.run_periodic_tasks().await;
    assert_eq!(wait_prunes(&app, 2).await.len(), 2);
    // Asked directly, it prunes at once; the fake caches nothing.
    assert_eq!(app.compute.prune_image_caches().await, 0);
    assert_eq!(app.driver.prune_calls().len(), 3);
}

#[tokio::test]
async fn an_interval_of_zero_never_prunes() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        image_cache_interval_secs: 0,
        ..Default::default()
    })
    .await;
    app.compute.run_periodic_tasks().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.compute.run_periodic_tasks().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.driver.prune_calls().is_empty());
}

#[tokio::test]
async fn by_default_the_first_prune_waits_for_the_interval() {
    let app = TestApp::new().await;
    let cfg = app.compute.config();
    assert_eq!(cfg.image_cache_interval_secs, 2400);
    assert_eq!(cfg.image_cache_min_age_secs, 86400);
    app.compute.run_periodic_tasks().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.driver.prune_calls().is_empty());
}
