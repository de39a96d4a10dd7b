"""`python -m bench.vm`'s table: every path beside the underlay, as ratios."""

from bench.vm import table


def test_table_puts_each_path_beside_the_underlay_and_marks_what_is_missing():
    figures = {
        "throughput_mbit_s_emulated": {"underlay": 2000.0, "overlay_gre": 500.0},
        "rtt_ms_emulated": {"underlay": 0.5, "overlay_gre": 1.0, "overlay_ipsec": 2.0},
    }
    rows = table(figures).splitlines()
    assert rows[2] == "| underlay | 2000.0 | 1.00x | 0.5 | 1.00x |"
    assert rows[3] == "| GRE (kernel datapath) | 500.0 | 0.25x | 1.0 | 2.00x |"
    assert rows[4] == "| GRE + IPsec (ESP, PSK) | - | - | 2.0 | 4.00x |"
