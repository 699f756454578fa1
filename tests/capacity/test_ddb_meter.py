"""The metering proxy against DynamoDB's documented rules, one kind of request at a time.

Each case sends real requests through the proxy to the emulator (`AWS_ENDPOINT_URL`, which
`scripts/test.sh` starts) and compares the units counted with the figure worked out by hand
from the developer guide's rules: a write one unit per started KB of the larger of the item
before and after, a read one unit per started 4 KB (half when eventually consistent, at least
one even for nothing), a query page its items' total, a transaction twice.

    AWS_ENDPOINT_URL=http://127.0.0.1:5300 python -m unittest discover -s tests/capacity
"""

from __future__ import annotations

import json
import os
import sys
import threading
import unittest
import urllib.request
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import ddb_meter  # noqa: E402

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL")
REGION = os.environ.get("AWS_REGION", "eu-south-1")


def padded(key: str, size: int, name: str = "v", sk: str | None = None) -> dict:
    """An item of exactly `size` bytes: `pk` (and `sk`) plus a string attribute filling it."""
    item = {"pk": {"S": key}}
    if sk is not None:
        item["sk"] = {"S": sk}
    fill = size - ddb_meter.item_size(item) - len(name)
    assert fill >= 0, size
    item[name] = {"S": "x" * fill}
    assert ddb_meter.item_size(item) == size
    return item


class Sizes(unittest.TestCase):
    """Item sizes from the guide's rules, without an emulator."""

    def test_numbers_take_a_byte_per_two_significant_digits_plus_one(self):
        self.assertEqual(ddb_meter.number_size("7"), 2)
        self.assertEqual(ddb_meter.number_size("123"), 3)
        self.assertEqual(ddb_meter.number_size("1000000"), 2)
        self.assertEqual(ddb_meter.number_size("-0.00125"), 3)
        self.assertEqual(ddb_meter.number_size("1767600000123"), 8)

    def test_values_of_every_type(self):
        item = {
            "s": {"S": "é"},  # 1 + 2
            "b": {"B": "AAAA"},  # 1 + 3 bytes decoded
            "t": {"BOOL": True},  # 1 + 1
            "l": {"L": [{"N": "1"}, {"N": "22"}]},  # 1 + 3 + 3 + 3
            "m": {"M": {"ab": {"S": "xyz"}}},  # 1 + 3 + 2 + 3 + 1
            "ss": {"SS": ["a", "bc"]},  # 2 + 3
        }
        self.assertEqual(ddb_meter.item_size(item), 3 + 4 + 2 + 10 + 10 + 5)

    def test_units_round_up_and_are_never_zero(self):
        self.assertEqual(ddb_meter.write_units(2560), 3)
        self.assertEqual(ddb_meter.write_units(0), 1)
        self.assertEqual(ddb_meter.read_units(3500, True), 1)
        self.assertEqual(ddb_meter.read_units(8192, False), 1)
        self.assertEqual(ddb_meter.read_units(0, False), 0.5)


@unittest.skipUnless(ENDPOINT, "needs AWS_ENDPOINT_URL (scripts/test.sh starts moto)")
class Requests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import boto3
        from botocore.config import Config

        cls.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), ddb_meter.make_handler(ddb_meter.Upstream(ENDPOINT), ddb_meter.Meter())
        )
        cls.server.daemon_threads = True
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.db = boto3.client(
            "dynamodb",
            endpoint_url=cls.url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(user_agent_appid="probe", retries={"max_attempts": 1}),
        )
        suffix = uuid.uuid4().hex[:8]
        cls.table = f"meter-{suffix}"
        cls.sorted = f"meter-sorted-{suffix}"
        cls.db.create_table(
            TableName=cls.table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        cls.db.create_table(
            TableName=cls.sorted,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )

    @classmethod
    def tearDownClass(cls):
        for t in (cls.table, cls.sorted):
            cls.db.delete_table(TableName=t)
        cls.server.shutdown()

    def counted(self, operation: str, table: str | None = None) -> tuple[float, float]:
        """(write, read) units counted for `operation` since the last call."""
        with urllib.request.urlopen(self.url + "/__meter") as r:
            counts = json.load(r)
        urllib.request.urlopen(urllib.request.Request(self.url + "/__meter/reset", method="POST")).close()
        e = counts.get("probe", {}).get(table or self.table, {}).get(operation, {})
        return e.get("write", 0.0), e.get("read", 0.0)

    def reset(self):
        self.counted("-")

    def put(self, item: dict, table: str | None = None):
        self.db.put_item(TableName=table or self.table, Item=item)

    def test_a_put_bills_the_larger_of_the_item_before_and_after_per_started_kb(self):
        self.reset()
        self.put(padded("p1", 2500))
        self.assertEqual(self.counted("PutItem"), (3.0, 0.0))
        # Overwritten by a 500-byte item: the 2,500 bytes before still bill.
        self.put(padded("p1", 500))
        self.assertEqual(self.counted("PutItem"), (3.0, 0.0))
        self.put(padded("p1", 1024))
        self.assertEqual(self.counted("PutItem"), (1.0, 0.0))

    def test_a_failed_conditional_put_bills_the_item_as_it_is(self):
        self.put(padded("c1", 2500))
        self.reset()
        with self.assertRaises(self.db.exceptions.ConditionalCheckFailedException):
            self.db.put_item(
                TableName=self.table, Item=padded("c1", 100), ConditionExpression="attribute_not_exists(pk)"
            )
        self.assertEqual(self.counted("PutItem"), (3.0, 0.0))

    def test_an_update_bills_the_larger_of_before_and_after(self):
        self.put(padded("u1", 500))
        self.reset()
        self.db.update_item(
            TableName=self.table,
            Key={"pk": {"S": "u1"}},
            UpdateExpression="SET w = :w",
            ExpressionAttributeValues={":w": {"S": "y" * 600}},
        )
        # 500 + 1 + 600 = 1,101 bytes after: two units.
        self.assertEqual(self.counted("UpdateItem"), (2.0, 0.0))

    def test_a_delete_bills_the_item_deleted_and_at_least_one_unit(self):
        self.put(padded("d1", 1100))
        self.reset()
        self.db.delete_item(TableName=self.table, Key={"pk": {"S": "d1"}})
        self.assertEqual(self.counted("DeleteItem"), (2.0, 0.0))
        self.db.delete_item(TableName=self.table, Key={"pk": {"S": "nothing"}})
        self.assertEqual(self.counted("DeleteItem"), (1.0, 0.0))

    def test_a_batch_write_bills_each_item(self):
        self.put(padded("b3", 3000))
        self.reset()
        self.db.batch_write_item(
            RequestItems={
                self.table: [
                    {"PutRequest": {"Item": padded("b1", 100)}},
                    {"PutRequest": {"Item": padded("b2", 1500)}},
                    {"PutRequest": {"Item": padded("b3", 10)}},  # 3,000 bytes before
                ]
            }
        )
        self.assertEqual(self.counted("BatchWriteItem"), (1.0 + 2.0 + 3.0, 0.0))

    def test_a_transaction_bills_every_item_twice_condition_checks_included(self):
        self.put(padded("t2", 2500))
        self.reset()
        self.db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": self.table, "Item": padded("t1", 100)}},
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": "t2"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
        self.assertEqual(self.counted("TransactWriteItems"), (2 * 1.0 + 2 * 3.0, 0.0))

    def test_a_get_bills_per_started_4_kb_half_when_eventually_consistent(self):
        self.put(padded("g1", 5000))
        self.reset()
        self.db.get_item(TableName=self.table, Key={"pk": {"S": "g1"}}, ConsistentRead=True)
        self.assertEqual(self.counted("GetItem"), (0.0, 2.0))
        self.db.get_item(TableName=self.table, Key={"pk": {"S": "g1"}})
        self.assertEqual(self.counted("GetItem"), (0.0, 1.0))
        # Nothing found still bills a unit, or half.
        self.db.get_item(TableName=self.table, Key={"pk": {"S": "none"}}, ConsistentRead=True)
        self.assertEqual(self.counted("GetItem"), (0.0, 1.0))
        self.db.get_item(TableName=self.table, Key={"pk": {"S": "none"}})
        self.assertEqual(self.counted("GetItem"), (0.0, 0.5))

    def test_a_batch_get_rounds_each_item_up_to_4_kb(self):
        self.put(padded("bg1", 100))
        self.put(padded("bg2", 5000))
        self.reset()
        keys = [{"pk": {"S": "bg1"}}, {"pk": {"S": "bg2"}}, {"pk": {"S": "bg-none"}}]
        self.db.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
        self.assertEqual(self.counted("BatchGetItem"), (0.0, 1.0 + 2.0 + 1.0))
        self.db.batch_get_item(RequestItems={self.table: {"Keys": keys}})
        self.assertEqual(self.counted("BatchGetItem"), (0.0, 2.0))

    def test_a_query_page_bills_its_items_total_whatever_it_projects(self):
        for i in range(3):
            self.put(padded("q", 1500, sk=f"s{i}"), table=self.sorted)
        self.reset()
        q = dict(
            TableName=self.sorted,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "q"}},
        )
        # 4,500 bytes: two units, one eventually consistent.
        self.db.query(**q, ConsistentRead=True)
        self.assertEqual(self.counted("Query", self.sorted), (0.0, 2.0))
        self.db.query(**q)
        self.assertEqual(self.counted("Query", self.sorted), (0.0, 1.0))
        self.db.query(**q, ConsistentRead=True, ProjectionExpression="sk")
        self.assertEqual(self.counted("Query", self.sorted), (0.0, 2.0))
        # An empty page is still a unit.
        self.db.query(
            TableName=self.sorted,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "empty"}},
            ConsistentRead=True,
        )
        self.assertEqual(self.counted("Query", self.sorted), (0.0, 1.0))

    def test_a_transactional_get_bills_every_item_twice(self):
        self.put(padded("tg1", 100))
        self.put(padded("tg2", 5000))
        self.reset()
        self.db.transact_get_items(
            TransactItems=[
                {"Get": {"TableName": self.table, "Key": {"pk": {"S": "tg1"}}}},
                {"Get": {"TableName": self.table, "Key": {"pk": {"S": "tg2"}}}},
            ]
        )
        self.assertEqual(self.counted("TransactGetItems"), (0.0, 2 * (1.0 + 2.0)))


if __name__ == "__main__":
    unittest.main()
