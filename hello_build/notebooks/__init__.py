"""每章的 Jupyter 笔记本：``build`` 从页面生成（纯函数），``run`` 在后台运行，``links`` 算出下载与 Colab 地址。"""
