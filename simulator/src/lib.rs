//! Simulated city (being written).
