"""The web app: the page (Gradio components, layout, events) over img2img.service, which holds
what each request does and the serving policy. Served by `img2img app` (main.py).

    page.py            build_app: the translator, the Train tab, the models panel
    translate_tabs.py  Image, Video, Live, Scientific file, Batch
    models_panel.py    the model card, published models, the Hub
    train_tab.py       the Train tab;  train_api.py: its endpoints for API clients
    glue.py            errors shown on the page, uploads handed over, a client that went away
"""
