from awm_tui.cli import main

raise SystemExit(main())
