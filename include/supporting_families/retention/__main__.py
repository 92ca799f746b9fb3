from supporting_families.retention.cli import main

raise SystemExit(main())
