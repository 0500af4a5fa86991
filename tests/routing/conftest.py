from tests.automation.conftest import desk, shop, understanding

__all__ = ["desk", "shop", "understanding"]
