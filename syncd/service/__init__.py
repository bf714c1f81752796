"""The long-lived daemon: schedule, admin API, leader election, metrics, the status page and notifications."""
