"""node/metrics.py: the metrics registry renders what the node observed."""

from __future__ import annotations

from node.metrics import NodeMetrics


def test_metrics_render() -> None:
    class Store:
        def stats(self) -> dict[str, int]:
            return {"blocks": 7, "bytes": 70, "stored_bytes": 50}

    m = NodeMetrics(Store())
    m.observe_request(200, 1234, 0.01)
    m.observe_request(404, 0, 0.002)
    m.observe_rpc("add", 200, 0.5)
    m.add_upload_bytes("add", 99)
    m.blocks_written(3)
    m.block_got(True)
    m.block_got(False)
    text = m.render().decode()
    for line in (
        "pinion_blockstore_blocks 7.0",
        "pinion_blockstore_stored_bytes 50.0",
        'pinion_gateway_requests_total{status="200"} 1.0',
        'pinion_gateway_requests_total{status="404"} 1.0',
        "pinion_gateway_bytes_out_total 1234.0",
        'pinion_rpc_requests_total{endpoint="add",status="200"} 1.0',
        'pinion_upload_bytes_total{endpoint="add"} 99.0',
        "pinion_blocks_put_total 3.0",
        "pinion_blocks_get_total 1.0",
        'pinion_block_errors_total{op="get"} 1.0',
        "process_cpu_seconds_total",
    ):
        assert line in text, line
