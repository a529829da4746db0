"""The "Cost per 1,000 sends" section, on made-up figures: the deployed instance memory,
the formula, and every price with its source (none invented)."""

from __future__ import annotations

from bench import cost

SPENT = cost.Spent(cpu_send=0.004, cpu_send_guarded=0.008, cpu_callback=0.002,
                   calls_send=3, calls_send_guarded=10, calls_callback=1, first_send_extra=2)


def test_the_instance_memory_is_the_deployments() -> None:
    assert cost.instance_memory_gb() == 2.0  # infra/app/function-app.bicep: 2048 MB


def test_cpu_and_transactions_per_thousand_sends() -> None:
    text = cost.section(SPENT)
    # 1,000 x (4 ms + 2 x 2 ms) = 8 s of CPU, x 2 GB = 16 GB-s; 1,000 x (3 + 2) = 5,000 calls
    assert "| plain sends, 2 callbacks each | 8.00 s | 16.00 | 0.00042 | 5,000 |" in text
    assert "| with Idempotency-Key and all limits, 4 callbacks each | 16.00 s | 32.00 |" in text
    assert cost.FLEX_SOURCE in text and "price per 10,000 transactions" in text
