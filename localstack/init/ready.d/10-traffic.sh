#!/usr/bin/env bash
# Creates what `traffic aws-local --prefix traffic` expects (it also creates anything missing
# itself, so this only saves a start-up): three tables (pk/sk strings, on demand, TTL on
# expires_at), the readings stream, the alarm topic with an SQS queue subscribed to it, and an
# on-failure queue for the event source mapping. Runs inside the LocalStack container.
set -euo pipefail
region=${AWS_DEFAULT_REGION:-eu-south-1}
aws() { awslocal --region "$region" "$@"; }

for t in traffic-state traffic-registry traffic-results; do
  if ! aws dynamodb describe-table --table-name "$t" >/dev/null 2>&1; then
    aws dynamodb create-table --table-name "$t" \
      --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
      --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
      --billing-mode PAY_PER_REQUEST >/dev/null
    aws dynamodb update-time-to-live --table-name "$t" \
      --time-to-live-specification Enabled=true,AttributeName=expires_at >/dev/null
  fi
done

aws kinesis describe-stream-summary --stream-name traffic-readings >/dev/null 2>&1 ||
  aws kinesis create-stream --stream-name traffic-readings --shard-count 2

topic=$(aws sns create-topic --name traffic-alarms --query TopicArn --output text)
queue=$(aws sqs create-queue --queue-name traffic-alarm-reader --query QueueUrl --output text)
queue_arn=$(aws sqs get-queue-attributes --queue-url "$queue" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)
aws sns subscribe --topic-arn "$topic" --protocol sqs --notification-endpoint "$queue_arn" >/dev/null
aws sqs create-queue --queue-name traffic-failed-batches >/dev/null

echo "traffic resources ready: stream traffic-readings, tables traffic-{state,registry,results}, topic $topic"
