//! [`StatsStore`] on `RESULTS_TABLE`: one item per function and minute, pk `stats`, sk
//! `ord(minute_ms)#<function>`, expiring after `stats_ttl_ms`.
//!
//! A sample is added with one `UpdateItem` (`ADD` of the counters, atomic under concurrent
//! invocations). The largest latency cannot be added: when the sample's exceeds the stored
//! one (the update returns it), a second, conditional `UpdateItem` raises it.

use crate::capacity::{item_size, write_units};
use crate::error::{code_of, port_error};
use crate::items::{Query, SortKey, from_item, key, n_i64, num, ord_i64};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use traffic_ports::{PortResult, Series, StatsSample, StatsStore};

#[derive(Serialize, Deserialize)]
struct StatsItem {
    function: Series,
    minute_ms: i64,
    #[serde(default)]
    invocations: u64,
    #[serde(default)]
    records: u64,
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    latency_ms_sum: u64,
    #[serde(default)]
    latency_ms_max: u64,
    #[serde(default)]
    read_units: f64,
    #[serde(default)]
    write_units: f64,
}

#[async_trait]
impl StatsStore for DynamoStore {
    async fn add_stats(&self, sample: &StatsSample) -> PortResult<()> {
        let table = self.table(Table::Results)?;
        let k = key(
            "stats",
            format!("{}#{}", ord_i64(sample.minute_ms), sample.function),
        );
        let resp = self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(k.clone()))
            .update_expression(
                "SET #fn = :fn, minute_ms = :m, expires_at = :e \
                 ADD invocations :i, records :r, accepted :a, latency_ms_sum :s, \
                 read_units :ru, write_units :wu",
            )
            .expression_attribute_names("#fn", "function")
            .expression_attribute_values(":fn", AttributeValue::S(sample.function.to_string()))
            .expression_attribute_values(":m", num(sample.minute_ms))
            .expression_attribute_values(
                ":e",
                num((sample.minute_ms + self.opts.stats_ttl_ms) / 1000),
            )
            .expression_attribute_values(":i", num(sample.invocations))
            .expression_attribute_values(":r", num(sample.records))
            .expression_attribute_values(":a", num(sample.accepted))
            .expression_attribute_values(":s", num(sample.latency_ms_sum))
            .expression_attribute_values(":ru", num(sample.read_units))
            .expression_attribute_values(":wu", num(sample.write_units))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| port_error("recording statistics", e))?;
        let size = resp.attributes().map_or(0, item_size);
        self.metrics
            .write(&Table::Results.op("UpdateItem"), write_units(size));
        let stored_max = resp
            .attributes
            .as_ref()
            .and_then(|a| n_i64(a, "latency_ms_max"));
        if stored_max.is_none_or(|m| (m as u64) < sample.latency_ms_max) {
            match self
                .ddb
                .update_item()
                .table_name(table)
                .set_key(Some(k))
                .update_expression("SET latency_ms_max = :x")
                .condition_expression("attribute_not_exists(latency_ms_max) OR latency_ms_max < :x")
                .expression_attribute_values(":x", num(sample.latency_ms_max))
                .send()
                .await
            {
                Ok(_) => self
                    .metrics
                    .write(&Table::Results.op("UpdateItem"), write_units(size)),
                // A larger one got there first.
                Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                    self.metrics
                        .write(&Table::Results.op("UpdateItem"), write_units(size));
                }
                Err(e) => return Err(port_error("recording the largest latency", e)),
            }
        }
        Ok(())
    }

    async fn stats(&self, since_ms: i64) -> PortResult<Vec<StatsSample>> {
        let mut q = Query::partition(Table::Results, "stats").sk(SortKey::From(ord_i64(since_ms)));
        q.consistent = false;
        self.query(q)
            .await?
            .into_iter()
            .map(|i| {
                let s: StatsItem = from_item("statistics", i)?;
                Ok(StatsSample {
                    function: s.function,
                    minute_ms: s.minute_ms,
                    invocations: s.invocations,
                    records: s.records,
                    accepted: s.accepted,
                    latency_ms_sum: s.latency_ms_sum,
                    latency_ms_max: s.latency_ms_max,
                    read_units: s.read_units,
                    write_units: s.write_units,
                })
            })
            .collect()
    }
}
