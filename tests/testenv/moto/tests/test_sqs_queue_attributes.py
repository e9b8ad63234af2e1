"""moto's queue attributes through the lazy patch (patches._LazyQueueAttributes): the
message counts that GetQueueAttributes answers stay right as messages are sent, received
and deleted, and the other attributes are unchanged."""


def test_message_counts_follow_sends_receives_and_deletes(env):
    sqs = env.client("sqs")
    url = sqs.create_queue(QueueName="lazy-counts", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for batch in range(3):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"m{batch}-{i}"} for i in range(10)])

    def counts():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return (int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"]),
                int(attrs["ApproximateNumberOfMessagesDelayed"]), attrs["VisibilityTimeout"])

    assert counts() == (30, 0, 0, "60")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    assert counts() == (20, 10, 0, "60")
    sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)])
    assert counts() == (20, 0, 0, "60")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    assert counts() == (20, 0, 1, "60")
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert one == {"ApproximateNumberOfMessages": "20"}
