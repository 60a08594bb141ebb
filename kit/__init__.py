"""What the tests and the benchmarks share: webhook bodies of the three providers
(`kit.payloads`), their signatures (`kit.signing`), a stand-in for the providers' send APIs
(`kit.provider_double`), and for the benchmarks a durable cluster (`kit.durable`), the
service's processes (`kit.services`), a signed load (`kit.load`) and memory figures
(`kit.procfs`).

Installed next to `app` by `pip install -e .` so that tests and benchmarks import it without
touching sys.path. The service never imports it.
"""
