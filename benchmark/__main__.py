from cmhbench.cli import main

raise SystemExit(main())
